// timbre: command-line client of a timbre server. `timbre help` lists the commands (one file
// each, *_command.cc, listed in command_table.cc); `timbre help COMMAND` shows one. Exit codes:
// 0 success or help, 1 the server refused or failed, 2 bad usage or an unreadable input file.
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/cli/cli_flags.h"
#include "client/cli/command.h"
#include "client/cli/command_help.h"
#include "client/cli/command_line.h"
#include "client/cli/command_status.h"

namespace timbre {
namespace {

// `timbre help [COMMAND]`.
int Help(const CommandLine& line) {
  if (line.arguments.size() > 1 || !line.flags.empty()) {
    return Fail(kExitUsage, absl::InvalidArgumentError("usage: timbre help [COMMAND]"));
  }
  if (line.arguments.empty()) {
    std::printf("%s", OverviewHelp().c_str());
    return 0;
  }
  const Command* command = FindCommand(line.arguments[0]);
  if (command == nullptr) return Fail(kExitUsage, UnknownCommand(line.arguments[0]));
  std::printf("%s", CommandHelp(*command).c_str());
  return 0;
}

int Main(int argc, char** argv) {
  const CommandLine line = SplitCommandLine(argc, argv);
  if (line.command.empty()) {
    if (line.help && line.flags.empty()) {
      std::printf("%s", OverviewHelp().c_str());
      return 0;
    }
    std::fprintf(stderr, "%s", OverviewHelp().c_str());
    return kExitUsage;
  }
  if (line.command == "help") return Help(line);
  const Command* command = FindCommand(line.command);
  if (command == nullptr) return Fail(kExitUsage, UnknownCommand(line.command));
  if (line.help) {
    std::printf("%s", CommandHelp(*command).c_str());
    return 0;
  }
  if (!line.arguments.empty()) {
    return Fail(kExitUsage, absl::InvalidArgumentError(absl::StrCat(
                                "unexpected argument '", line.arguments[0], "'; usage: ",
                                command->usage)));
  }
  if (absl::Status applied = ApplyFlags(*command, line.flags); !applied.ok()) {
    return Fail(kExitUsage, applied);
  }
  if (absl::Status given = CheckRequiredFlags(*command); !given.ok()) {
    return Fail(kExitUsage, given);
  }
  absl::StatusOr<TimbreClient::Options> connection = ConnectionFromFlags();
  if (!connection.ok()) return Fail(kExitUsage, connection.status());
  auto client = TimbreClient::Create(*connection);
  if (!client.ok()) return Fail(kExitUsage, client.status());
  auto builder = BuilderClient::Create(*connection);
  if (!builder.ok()) return Fail(kExitUsage, builder.status());
  return command->run(CommandContext{**client, **builder, *connection});
}

}  // namespace
}  // namespace timbre

int main(int argc, char** argv) { return timbre::Main(argc, argv); }
