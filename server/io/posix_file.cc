#include "server/io/posix_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace timbre {

absl::Status ErrnoStatus(int error, absl::string_view what) {
  const std::string message = absl::StrCat(what, ": ", std::strerror(error));
  switch (error) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
      return absl::ResourceExhaustedError(message);
    case ENOENT:
      return absl::NotFoundError(message);
    case EEXIST:
      return absl::AlreadyExistsError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status SyncPath(const std::string& path, bool directory) {
  const int fd = open(path.c_str(), (directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open '", path, "'"));
  const int rc = fsync(fd);
  const int saved = errno;
  close(fd);
  if (rc != 0) return ErrnoStatus(saved, absl::StrCat("fsync '", path, "'"));
  return absl::OkStatus();
}

absl::StatusOr<FileStamp> StatFile(const std::string& path) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) return ErrnoStatus(errno, absl::StrCat("stat '", path, "'"));
  FileStamp stamp;
  stamp.bytes = info.st_size;
  stamp.mtime_ns = static_cast<int64_t>(info.st_mtim.tv_sec) * 1000000000 + info.st_mtim.tv_nsec;
  return stamp;
}

absl::StatusOr<std::unique_ptr<OutputFile>> OutputFile::Create(const std::string& path,
                                                               std::string label) {
  if (label.empty()) label = absl::StrCat("'", path, "'");
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("creating ", label));
  return std::unique_ptr<OutputFile>(new OutputFile(fd, path, std::move(label)));
}

absl::StatusOr<std::unique_ptr<OutputFile>> OutputFile::CreateTemporary(const std::string& target,
                                                                        std::string label) {
  if (label.empty()) label = absl::StrCat("'", target, "'");
  std::string path = target + ".partial-XXXXXX";
  const int fd = mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("creating ", label));
  // mkostemp creates the file 0600; give it the mode Create gives.
  if (fchmod(fd, 0644) != 0) {
    const int saved = errno;
    close(fd);
    unlink(path.c_str());
    return ErrnoStatus(saved, absl::StrCat("creating ", label));
  }
  return std::unique_ptr<OutputFile>(new OutputFile(fd, std::move(path), std::move(label)));
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) close(fd_);
}

absl::Status OutputFile::Append(absl::string_view data) {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(label_, " is closed"));
  while (!data.empty()) {
    const ssize_t n = write(fd_, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, absl::StrCat("writing ", label_));
    data.remove_prefix(static_cast<size_t>(n));
    size_ += n;
  }
  return absl::OkStatus();
}

absl::Status OutputFile::SyncAndClose() {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(label_, " is closed"));
  const int fd = std::exchange(fd_, -1);
  if (fsync(fd) != 0) {
    const int saved = errno;
    close(fd);
    return ErrnoStatus(saved, absl::StrCat("syncing ", label_));
  }
  if (close(fd) != 0) return ErrnoStatus(errno, absl::StrCat("closing ", label_));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<InputFile>> InputFile::Open(const std::string& path,
                                                           std::string label) {
  if (label.empty()) label = absl::StrCat("'", path, "'");
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. Reads of a
  // regular file ignore it.
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("opening ", label));
  struct stat info;
  if (fstat(fd, &info) != 0) {
    const int saved = errno;
    close(fd);
    return ErrnoStatus(saved, absl::StrCat("stat ", label));
  }
  if (!S_ISREG(info.st_mode)) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat(label, " is not a regular file"));
  }
  return std::unique_ptr<InputFile>(new InputFile(fd, info.st_size, std::move(label)));
}

InputFile::~InputFile() { close(fd_); }

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, int64_t max_bytes,
                                          std::string label) {
  if (label.empty()) label = absl::StrCat("'", path, "'");
  absl::StatusOr<std::unique_ptr<InputFile>> file = InputFile::Open(path, label);
  if (!file.ok()) return file.status();
  if ((*file)->size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(label, " has ", (*file)->size(),
                                                   " bytes, more than the ", max_bytes,
                                                   " such a file may have"));
  }
  std::string content(static_cast<size_t>((*file)->size()), '\0');
  if (absl::Status read = (*file)->ReadExactly(content.data(), content.size()); !read.ok()) {
    return read;
  }
  return content;
}

absl::Status InputFile::ReadExactly(char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = read(fd_, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, absl::StrCat("reading ", label_));
    if (n == 0) return ErrnoStatus(EIO, absl::StrCat("reading ", label_, " (ended early)"));
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace timbre
