#include "server/security/memory_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/io/posix_file.h"

namespace timbre {
namespace {

// A new memfd labelled `name` holding `contents`, modified at `mtime_seconds` since the epoch;
// the caller closes it.
absl::StatusOr<int> FilledMemfd(const std::string& name, absl::string_view contents,
                                int64_t mtime_seconds) {
  const int fd = memfd_create(name.c_str(), MFD_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("creating memory file '", name, "'"));
  auto fail = [&](absl::string_view what) {
    const int error = errno;
    close(fd);
    return ErrnoStatus(error, absl::StrCat(what, " memory file '", name, "'"));
  };
  while (!contents.empty()) {
    const ssize_t written = write(fd, contents.data(), contents.size());
    if (written < 0 && errno == EINTR) continue;
    if (written < 0) return fail("writing");
    contents.remove_prefix(static_cast<size_t>(written));
  }
  const timespec times[2] = {{0, UTIME_OMIT}, {static_cast<time_t>(mtime_seconds), 0}};
  if (futimens(fd, times) != 0) return fail("setting the time of");
  return fd;
}

}  // namespace

MemoryFile::MemoryFile(std::string name, int fd, int64_t mtime_seconds)
    : name_(std::move(name)),
      fd_(fd),
      path_(absl::StrCat("/proc/self/fd/", fd)),
      mtime_seconds_(mtime_seconds) {}

absl::StatusOr<std::unique_ptr<MemoryFile>> MemoryFile::Create(absl::string_view name,
                                                               absl::string_view contents) {
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  absl::StatusOr<int> fd = FilledMemfd(std::string(name), contents, now);
  if (!fd.ok()) return fd.status();
  std::unique_ptr<MemoryFile> file(new MemoryFile(std::string(name), *fd, now));
  const int reopened = open(file->path().c_str(), O_RDONLY | O_CLOEXEC);
  if (reopened < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("memory file '", name, "' cannot be opened as '", file->path(),
                     "' (is /proc mounted?): ", std::strerror(errno)));
  }
  close(reopened);
  return file;
}

MemoryFile::~MemoryFile() { close(fd_); }

absl::Status MemoryFile::Replace(absl::string_view contents) {
  absl::MutexLock lock(&mutex_);
  const int64_t mtime = std::max(absl::ToUnixSeconds(absl::Now()), mtime_seconds_ + 1);
  absl::StatusOr<int> fd = FilledMemfd(name_, contents, mtime);
  if (!fd.ok()) return fd.status();
  const bool moved = dup3(*fd, fd_, O_CLOEXEC) == fd_;
  const int error = errno;
  close(*fd);
  if (!moved) return ErrnoStatus(error, absl::StrCat("replacing memory file '", name_, "'"));
  mtime_seconds_ = mtime;
  return absl::OkStatus();
}

}  // namespace timbre
