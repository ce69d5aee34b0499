// Files written and read front to back, whose errors carry the operating system's reason: the
// building blocks of durable_write.h and the one way timbre reads a file (ReadSmallFile for a
// whole small file, InputFile for a large one).
//
// A full disk, an exhausted quota and the process's file-size limit (ENOSPC, EDQUOT, EFBIG) are
// RESOURCE_EXHAUSTED everywhere here, so that a client learns the server is out of room rather
// than that something inside it broke.
//
// Thread-safe: the free functions hold no state. OutputFile and InputFile are thread-compatible.
#ifndef TIMBRE_SERVER_IO_POSIX_FILE_H_
#define TIMBRE_SERVER_IO_POSIX_FILE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace timbre {

// The status for the errno value `error` while doing `what` ("writing 'a.npy'"): the message is
// "<what>: <strerror>"; the code RESOURCE_EXHAUSTED for ENOSPC, EDQUOT and EFBIG, NOT_FOUND for
// ENOENT, ALREADY_EXISTS for EEXIST, INTERNAL otherwise.
absl::Status ErrnoStatus(int error, absl::string_view what);

// fsyncs a file, or a directory if `directory` (making renames and creations in it durable).
// Errors: ErrnoStatus of open or fsync.
absl::Status SyncPath(const std::string& path, bool directory);

// Size and modification time of a file, to notice that it changed.
struct FileStamp {
  int64_t bytes = 0;
  int64_t mtime_ns = 0;  // nanoseconds since the Unix epoch

  bool operator==(const FileStamp& other) const {
    return bytes == other.bytes && mtime_ns == other.mtime_ns;
  }
  bool operator!=(const FileStamp& other) const { return !(*this == other); }
};

// The stamp of `path` (symlinks followed). Errors: ErrnoStatus of stat, e.g. NOT_FOUND.
absl::StatusOr<FileStamp> StatFile(const std::string& path);

// A new file being written front to back. The destructor closes it without syncing.
class OutputFile {
 public:
  // Creates `path`, which must not exist, with mode 0644. `label` names the file in error
  // messages ("feature file 'a.npy'"); empty means the path. Errors: ErrnoStatus of open.
  static absl::StatusOr<std::unique_ptr<OutputFile>> Create(const std::string& path,
                                                            std::string label = "");
  // Creates a new file next to `target`, named `target` + ".partial-" and a unique suffix, with
  // mode 0644: to be written, synced and then renamed onto `target` by the caller, who also
  // removes it (path()) on failure. `label` as for Create. Errors: ErrnoStatus of mkostemp or
  // fchmod.
  static absl::StatusOr<std::unique_ptr<OutputFile>> CreateTemporary(const std::string& target,
                                                                     std::string label = "");
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  // Appends `data`. Errors: ErrnoStatus of write, e.g. RESOURCE_EXHAUSTED for a full disk.
  absl::Status Append(absl::string_view data);

  // fsyncs and closes the file; later calls fail. Errors: ErrnoStatus of fsync or close (a full
  // disk may show only here on some file systems); FAILED_PRECONDITION if already closed.
  absl::Status SyncAndClose();

  // Bytes appended so far.
  int64_t size() const { return size_; }
  // The file's path.
  const std::string& path() const { return path_; }

 private:
  OutputFile(int fd, std::string path, std::string label)
      : fd_(fd), path_(std::move(path)), label_(std::move(label)) {}

  int fd_;
  const std::string path_;
  const std::string label_;
  int64_t size_ = 0;
};

// The whole content of the regular file at `path` (InputFile::Open's rules), which must hold at
// most `max_bytes`. `label` as for InputFile::Open. Errors: those of InputFile::Open and
// ReadExactly; INVALID_ARGUMENT "<label> has N bytes, more than the M a ... may have" for a
// larger file.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path, int64_t max_bytes,
                                          std::string label = "");

// An existing regular file read front to back. The destructor closes it.
class InputFile {
 public:
  // Opens `path`, which must be a regular file (symlinks followed). `label` names the file in
  // error messages ("vectors file 'a.f32'"); empty means the path. Opening never blocks: a FIFO
  // or device put where a file belongs is refused, not waited on. Errors: ErrnoStatus of open
  // (NOT_FOUND if missing) or fstat; INVALID_ARGUMENT "<label> is not a regular file".
  static absl::StatusOr<std::unique_ptr<InputFile>> Open(const std::string& path,
                                                         std::string label = "");
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  // Reads the next `size` bytes into `data`. Errors: ErrnoStatus of read; INTERNAL (EIO's
  // reason) if the file ends first.
  absl::Status ReadExactly(char* data, size_t size);

  // The file's size in bytes when it was opened.
  int64_t size() const { return size_; }

 private:
  InputFile(int fd, int64_t size, std::string label)
      : fd_(fd), size_(size), label_(std::move(label)) {}

  const int fd_;
  const int64_t size_;
  const std::string label_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_IO_POSIX_FILE_H_
