#include "server/faiss/faiss_index_probe.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>

#include <faiss/Index.h>
#include <faiss/index_io.h>
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace timbre {
namespace {

// Exit codes of the child.
constexpr int kReadOk = 0;
constexpr int kFaissThrew = 1;
// The longest reason the child passes back through its pipe.
constexpr size_t kMaxReasonBytes = 512;

// The process's current address-space size in bytes (first field of /proc/self/statm, in
// pages), or -1 if unknown.
int64_t AddressSpaceBytes() {
  FILE* statm = std::fopen("/proc/self/statm", "r");
  if (statm == nullptr) return -1;
  long long pages = -1;
  if (std::fscanf(statm, "%lld", &pages) != 1) pages = -1;
  std::fclose(statm);
  return pages < 0 ? -1 : pages * sysconf(_SC_PAGESIZE);
}

// In the child: bound the memory, read, report. Never returns.
[[noreturn]] void ReadInChild(const std::string& path, bool mmap, int64_t memory_limit,
                              int reason_fd) {
  // What faiss or a crash in it prints is not the server's log: the reason travels by the pipe.
  if (const int null = open("/dev/null", O_WRONLY | O_CLOEXEC); null >= 0) {
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
  }
  if (memory_limit > 0) {
    const rlimit limit{static_cast<rlim_t>(memory_limit), static_cast<rlim_t>(memory_limit)};
    setrlimit(RLIMIT_AS, &limit);
  }
  int code = kReadOk;
  try {
    std::unique_ptr<faiss::Index> index(
        faiss::read_index(path.c_str(), mmap ? faiss::IO_FLAG_MMAP : 0));
  } catch (const std::exception& e) {
    const size_t length = std::min(std::strlen(e.what()), kMaxReasonBytes);
    if (write(reason_fd, e.what(), length) < 0) {
      // The parent reports the exit code alone.
    }
    code = kFaissThrew;
  }
  _exit(code);  // no atexit handlers, destructors or leak checks of the parent's state
}

}  // namespace

absl::Status ProbeFaissIndexFile(const std::string& path, const IndexProbeOptions& options) {
  const std::string label = absl::StrCat("index file '", path, "'");
  struct stat info;
  if (stat(path.c_str(), &info) != 0) {
    return absl::NotFoundError(absl::StrCat(label, ": ", std::strerror(errno)));
  }
  if (!S_ISREG(info.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(label, " is not a regular file"));
  }
  int64_t memory_limit = -1;
  if (const int64_t current = AddressSpaceBytes(); current > 0) {
    memory_limit = current + options.memory_base_bytes +
                   options.memory_per_file_byte * static_cast<int64_t>(info.st_size);
  }
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot check ", label, ": pipe: ",
                                               std::strerror(errno)));
  }
  const pid_t child = fork();
  if (child < 0) {
    const int saved = errno;
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    return absl::UnavailableError(absl::StrCat("cannot check ", label, ": fork: ",
                                               std::strerror(saved)));
  }
  if (child == 0) {
    close(pipe_fds[0]);
    ReadInChild(path, options.mmap, memory_limit, pipe_fds[1]);
  }
  close(pipe_fds[1]);

  // Wait for the child with a deadline, polling: waitpid has no timeout.
  const absl::Time deadline = absl::Now() + options.timeout;
  int status = 0;
  bool timed_out = false;
  absl::Duration pause = absl::Microseconds(200);
  while (true) {
    if (absl::Now() >= deadline) {
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
      timed_out = true;
      break;
    }
    const pid_t done = waitpid(child, &status, WNOHANG);
    if (done == child) break;
    if (done < 0 && errno != EINTR) {
      status = -1;
      break;
    }
    absl::SleepFor(pause);
    pause = std::min(pause * 2, absl::Milliseconds(20));
  }
  char reason[kMaxReasonBytes];
  const ssize_t reason_length = read(pipe_fds[0], reason, sizeof(reason));
  close(pipe_fds[0]);

  if (timed_out) {
    return absl::InvalidArgumentError(absl::StrCat(
        label, ": faiss's reader took more than ", absl::FormatDuration(options.timeout),
        " in the check process; the file is treated as corrupt"));
  }
  if (status == -1) {
    return absl::UnavailableError(absl::StrCat("cannot check ", label, ": waitpid failed"));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == kReadOk) return absl::OkStatus();
  if (WIFEXITED(status) && WEXITSTATUS(status) == kFaissThrew) {
    return absl::InvalidArgumentError(absl::StrCat(
        label, " is not a readable faiss index: ",
        reason_length > 0 ? std::string(reason, reason_length) : "faiss's reader failed"));
  }
  if (WIFSIGNALED(status)) {
    return absl::InvalidArgumentError(absl::StrCat(
        label, " is not a readable faiss index: faiss's reader crashed on it (signal ",
        WTERMSIG(status), ", ", strsignal(WTERMSIG(status)), ") in the check process"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      label, " is not a readable faiss index: the check process exited with code ",
      WEXITSTATUS(status), " (out of memory while reading it?)"));
}

}  // namespace timbre
