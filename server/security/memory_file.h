// MemoryFile: a file that lives only in the server's memory, never on a disk, at a path that
// other code in the process can open by name, and whose whole contents are replaced at once.
//
// It is how the server hands checked TLS credentials to gRPC, which reloads certificates only by
// polling files (ReloadableTlsCredentials). The file is a memfd; its path is
// "/proc/self/fd/<n>", valid in this process only. Replace() fills a new memfd and moves it onto
// descriptor <n> (dup3), so a reader that opens the path gets the old contents or the new ones,
// never a mix and never a partly written file.
//
// Each Replace() sets the file's modification time to a whole second later than the previous
// one (the current time when that is later): a reader that checks the times of two files before
// and after reading them, as gRPC's FileWatcherCertificateProvider does, notices a replacement
// between its two reads even within one second, and reads again.
//
// Linux only (memfd_create, /proc). Thread-safe.
#ifndef TIMBRE_SERVER_SECURITY_MEMORY_FILE_H_
#define TIMBRE_SERVER_SECURITY_MEMORY_FILE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace timbre {

class MemoryFile {
 public:
  // A file holding `contents`. `name` labels the memfd in /proc/<pid>/fd listings and errors.
  // Errors: ErrnoStatus (posix_file.h) of memfd_create, write or futimens;
  // FAILED_PRECONDITION when the file cannot be opened by its path (no /proc mounted).
  static absl::StatusOr<std::unique_ptr<MemoryFile>> Create(absl::string_view name,
                                                            absl::string_view contents);
  // Closes the file: its path no longer opens it. Readers that opened it keep their copy.
  ~MemoryFile();
  MemoryFile(const MemoryFile&) = delete;
  MemoryFile& operator=(const MemoryFile&) = delete;

  // "/proc/self/fd/<n>": the same for the life of the object.
  const std::string& path() const { return path_; }

  // Replaces the whole contents with `contents`, with a modification time later than the last.
  // Errors: ErrnoStatus of memfd_create, write, futimens or dup3; the contents stay as they were.
  absl::Status Replace(absl::string_view contents) ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  MemoryFile(std::string name, int fd, int64_t mtime_seconds);

  const std::string name_;
  const int fd_;  // the number stays; dup3 changes the file behind it
  const std::string path_;
  absl::Mutex mutex_;
  int64_t mtime_seconds_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_SECURITY_MEMORY_FILE_H_
