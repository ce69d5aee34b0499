// Reading and writing NumPy .npy files (format versions 1.0-3.0) of little-endian float32 or
// float16 arrays, as RVC writes its feature files.
//
// Thread-safe: free functions without state.
#ifndef TIMBRE_CLIENT_NPY_FILE_H_
#define TIMBRE_CLIENT_NPY_FILE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace timbre {

struct NpyArray {
  std::string descr;           // "<f4" (float32) or "<f2" (float16)
  std::vector<int64_t> shape;  // C order
  std::string data;            // packed values, product(shape) * itemsize bytes
};

// Errors: NOT_FOUND if the file cannot be opened; INVALID_ARGUMENT, naming the file and the
// problem, for a bad magic string, an unparsable header, a dtype other than <f4/<f2, Fortran
// order, or a data size that does not match the shape.
absl::StatusOr<NpyArray> ReadNpy(const std::string& path);

// Writes format 1.0. Errors: INVALID_ARGUMENT for an unsupported descr or a data size that does
// not match the shape; INTERNAL if the file cannot be written.
absl::Status WriteNpy(const std::string& path, const NpyArray& array);

// Bytes per value of a supported descr (4 or 2), 0 otherwise.
int NpyItemSize(const std::string& descr);

}  // namespace timbre

#endif  // TIMBRE_CLIENT_NPY_FILE_H_
