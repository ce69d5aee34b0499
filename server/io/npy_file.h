// Reading and writing NumPy .npy files (format versions 1.0-3.0) of little-endian float32 or
// float16 arrays, as RVC writes its feature files: whole arrays (ReadNpy, WriteNpy), just the
// header (ReadNpyHeader), or the rows of a large file block by block (NpyRowReader).
//
// Thread-safe: the free functions hold no state. NpyRowReader is thread-compatible.
#ifndef TIMBRE_SERVER_IO_NPY_FILE_H_
#define TIMBRE_SERVER_IO_NPY_FILE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/io/sha256.h"

namespace timbre {

struct NpyArray {
  std::string descr;           // "<f4" (float32) or "<f2" (float16)
  std::vector<int64_t> shape;  // C order
  std::string data;            // packed values, product(shape) * itemsize bytes
};

// The header of a .npy file as written, not yet checked for what timbre can use.
struct NpyHeader {
  std::string descr;           // numpy dtype string, e.g. "<f4", "<f2", "<f8"
  bool fortran_order = false;  // true if the data is column-major
  std::vector<int64_t> shape;  // empty for a 0-d array
  int64_t data_offset = 0;     // bytes from the start of the file to the first value
};

// Reads the magic string and header of `path`, not its data.
// Errors: NOT_FOUND if the file cannot be opened; INVALID_ARGUMENT, naming the file and the
// problem, if it is not a regular file, for a bad magic string, an unsupported format version, or
// a truncated or unparsable header; INTERNAL for a read error.
absl::StatusOr<NpyHeader> ReadNpyHeader(const std::string& path);

// Errors: those of ReadNpyHeader; INVALID_ARGUMENT, naming the file and the problem, for a dtype
// other than <f4/<f2, Fortran order, or a data size that does not match the shape.
absl::StatusOr<NpyArray> ReadNpy(const std::string& path);

// Writes format 1.0, replacing `path` atomically and durably (ReplaceFileDurably,
// durable_write.h). Errors: INVALID_ARGUMENT for an unsupported descr or a data size that does not
// match the shape; those of ReplaceFileDurably (NOT_FOUND for a missing directory,
// RESOURCE_EXHAUSTED for a full disk, INTERNAL otherwise), naming the file.
absl::Status WriteNpy(const std::string& path, const NpyArray& array);

// Bytes per value of a supported descr (4 or 2), 0 otherwise.
int NpyItemSize(const std::string& descr);

struct NpyRowReaderOptions {
  // How error messages name the file. Default (empty): its path.
  std::string label;
  // If set, every byte read from the file (magic, header, data) is fed to it in file order, so
  // that once all rows are read it holds the digest of the whole file. Not owned; must outlive
  // the reader. Default: none.
  Sha256* digest = nullptr;
};

// Reads the rows of a float32 or float16 .npy file in blocks, as float32 (float16 is widened
// exactly), so that a large file is never held in memory twice. A row is the values under one
// index of the first dimension: [n, d] has n rows of d values.
class NpyRowReader {
 public:
  // Opens `path` and reads its header. Errors: those of ReadNpy (which reads no data here);
  // INVALID_ARGUMENT for a 0-d array, which has no rows. Messages name options.label.
  static absl::StatusOr<std::unique_ptr<NpyRowReader>> Open(const std::string& path,
                                                            NpyRowReaderOptions options = {});
  ~NpyRowReader();
  NpyRowReader(const NpyRowReader&) = delete;
  NpyRowReader& operator=(const NpyRowReader&) = delete;

  const NpyHeader& header() const { return header_; }
  // Rows in the file: shape[0].
  int64_t rows() const { return header_.shape[0]; }
  // Values per row: the product of shape[1:] (1 for a 1-D array).
  int64_t row_size() const { return row_size_; }
  // Rows returned by ReadRows so far.
  int64_t rows_read() const { return rows_read_; }
  // Size of the whole file in bytes when it was opened.
  int64_t file_bytes() const { return file_bytes_; }

  // Reads the next `count` rows into `out`, which must hold count * row_size() floats.
  // Errors: OUT_OF_RANGE if fewer than `count` rows remain; INVALID_ARGUMENT if the file ends
  // early (it shrank after Open); INTERNAL for a read error. After an error, do not read on.
  absl::Status ReadRows(int64_t count, float* out);

 private:
  NpyRowReader(int fd, NpyHeader header, int64_t row_size, int64_t file_bytes,
               NpyRowReaderOptions options);

  const int fd_;
  const NpyHeader header_;
  const int64_t row_size_;
  const int64_t file_bytes_;
  const NpyRowReaderOptions options_;
  int64_t rows_read_ = 0;
  std::string buffer_;  // raw float16 bytes of the block being widened
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_IO_NPY_FILE_H_
