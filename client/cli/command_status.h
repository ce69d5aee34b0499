// Exit codes and error output shared by the `timbre` CLI's commands.
#ifndef TIMBRE_CLIENT_CLI_COMMAND_STATUS_H_
#define TIMBRE_CLIENT_CLI_COMMAND_STATUS_H_

#include <cstdio>

#include "absl/status/status.h"

namespace timbre {

// The server refused or failed the request (or a build ended failed or cancelled).
inline constexpr int kExitFailed = 1;
// Bad usage or an unreadable input file.
inline constexpr int kExitUsage = 2;

// Prints `status` to stderr and returns `code`.
inline int Fail(int code, const absl::Status& status) {
  std::fprintf(stderr, "timbre: %s\n", status.ToString().c_str());
  return code;
}

}  // namespace timbre

#endif  // TIMBRE_CLIENT_CLI_COMMAND_STATUS_H_
