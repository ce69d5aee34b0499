#include "server/faiss/faiss_index_probe.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace timbre {
namespace {

constexpr char kProbeProgramName[] = "timbre-index-probe";

bool IsExecutable(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) && access(path.c_str(), X_OK) == 0;
}

// The probe program: `configured` if set, else the one next to the running executable, else the
// one of the build tree (TIMBRE_INDEX_PROBE_BUILD_PATH). Empty if none is executable; `tried`
// lists the paths looked at.
std::string FindProbeProgram(const std::string& configured, std::string* tried) {
  if (!configured.empty()) {
    *tried = configured;
    return IsExecutable(configured) ? configured : "";
  }
  std::vector<std::string> candidates;
  char self[PATH_MAX];
  if (const ssize_t length = readlink("/proc/self/exe", self, sizeof(self) - 1); length > 0) {
    const std::string exe(self, static_cast<size_t>(length));
    candidates.push_back(exe.substr(0, exe.rfind('/') + 1) + kProbeProgramName);
  }
  candidates.push_back(TIMBRE_INDEX_PROBE_BUILD_PATH);
  *tried = absl::StrJoin(candidates, ", ");
  for (const std::string& candidate : candidates) {
    if (IsExecutable(candidate)) return candidate;
  }
  return "";
}

// Starts `program` on `path` with its output to `output_fd`, its error output to /dev/null.
// Returns posix_spawn's error number (0 on success).
int SpawnProbe(const std::string& program, const std::string& path,
               const IndexProbeOptions& options, int64_t extra, int output_fd, pid_t* child) {
  posix_spawn_file_actions_t actions;
  if (const int error = posix_spawn_file_actions_init(&actions); error != 0) return error;
  int error = posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (error == 0) error = posix_spawn_file_actions_adddup2(&actions, output_fd, STDOUT_FILENO);
  if (error == 0) {
    error = posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  }
  if (error == 0) {
    std::vector<std::string> args = {program, path, options.mmap ? "1" : "0", absl::StrCat(extra)};
    if (!options.vectors_path.empty()) args.push_back(options.vectors_path);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    error = posix_spawn(child, program.c_str(), &actions, nullptr, argv.data(), environ);
  }
  posix_spawn_file_actions_destroy(&actions);
  return error;
}

// The load's error as the probe reported it: its code on the first line, then its message.
absl::Status LoadError(const std::string& label, absl::string_view report) {
  const size_t newline = report.find('\n');
  int code = 0;
  if (newline == absl::string_view::npos || !absl::SimpleAtoi(report.substr(0, newline), &code) ||
      code <= 0 || code > static_cast<int>(absl::StatusCode::kUnauthenticated)) {
    return absl::InvalidArgumentError(
        absl::StrCat(label, " could not be loaded (the probe process gave no reason)"));
  }
  return absl::Status(static_cast<absl::StatusCode>(code), report.substr(newline + 1));
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
  std::string tried;
  const std::string program = FindProbeProgram(options.program, &tried);
  if (program.empty()) {
    return absl::UnavailableError(absl::StrCat("cannot check ", label, ": no executable ",
                                               kProbeProgramName, " (looked for ", tried, ")"));
  }
  const int64_t extra = std::max<int64_t>(
      0, options.memory_base_bytes +
             options.memory_per_file_byte * static_cast<int64_t>(info.st_size));
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot check ", label, ": pipe: ",
                                               std::strerror(errno)));
  }
  pid_t child = -1;
  const int spawn_error = SpawnProbe(program, path, options, extra, pipe_fds[1], &child);
  close(pipe_fds[1]);
  if (spawn_error != 0) {
    close(pipe_fds[0]);
    return absl::UnavailableError(absl::StrCat("cannot check ", label, ": cannot start ",
                                               program, ": ", std::strerror(spawn_error)));
  }

  // Wait for the probe with a deadline, polling: waitpid has no timeout.
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
  char reason[kMaxIndexProbeReasonBytes];
  const ssize_t reason_length = read(pipe_fds[0], reason, sizeof(reason));
  close(pipe_fds[0]);

  if (timed_out) {
    return absl::InvalidArgumentError(absl::StrCat(
        label, ": loading it took more than ", absl::FormatDuration(options.timeout),
        " in the probe process; the file is treated as corrupt"));
  }
  if (status == -1) {
    return absl::UnavailableError(absl::StrCat("cannot check ", label, ": waitpid failed"));
  }
  const int exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (exit_code == static_cast<int>(IndexProbeExit::kLoaded)) return absl::OkStatus();
  if (exit_code == static_cast<int>(IndexProbeExit::kLoadFailed)) {
    return LoadError(label, absl::string_view(reason, std::max<ssize_t>(reason_length, 0)));
  }
  if (WIFSIGNALED(status)) {
    return absl::InvalidArgumentError(absl::StrCat(
        label, " is not a readable faiss index: faiss crashed on it (signal ",
        WTERMSIG(status), ", ", strsignal(WTERMSIG(status)), ") in the probe process"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      label, " is not a readable faiss index: the probe process exited with code ",
      WEXITSTATUS(status), " (a crash, or out of memory while loading it?)"));
}

}  // namespace timbre
