// The command line of the `timbre` CLI: `timbre COMMAND [--flag=value ...]`, split and checked
// against the command's own flags, then applied to the flag registry. It replaces
// absl::ParseCommandLine, so that every mistake is a usage error (exit 2) that names what is
// wrong and the nearest right name, and so that help shows one command's flags only.
//
// Flags are written --name=value or --name value (-name works too); a boolean flag also as
// --name (true) or --noname (false). "--" ends the flags. "-h" and "--help" ask for help.
//
// Thread-compatible (the flag registry is process-wide).
#ifndef TIMBRE_CLIENT_CLI_COMMAND_LINE_H_
#define TIMBRE_CLIENT_CLI_COMMAND_LINE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/cli/command.h"

namespace timbre {

struct FlagArgument {
  std::string name;                  // as typed, without dashes and value: "speaker"
  std::optional<std::string> value;  // nullopt when none was given
};

struct CommandLine {
  std::string command;                 // the first argument that is no flag; "" if none
  std::vector<std::string> arguments;  // the arguments after it that are no flags
  std::vector<FlagArgument> flags;     // in order, without -h / --help
  bool help = false;                   // -h or --help was given
};

// Splits argv (argv[0] is the program). A non-boolean flag without "=" takes the next argument
// as its value. Cannot fail: names are checked by ApplyFlags.
CommandLine SplitCommandLine(int argc, char** argv);

// Checks that every flag is one of `command`'s (Command::flags or ConnectionFlags()), then sets
// each in the flag registry, stopping at the first invalid value. Errors
// (INVALID_ARGUMENT): an unknown flag, naming the nearest flag of the command; a flag of another
// command, naming the command's flags; a missing or invalid value.
absl::Status ApplyFlags(const Command& command, const std::vector<FlagArgument>& flags);

// INVALID_ARGUMENT "--NAME is required" for the first of `command.required` that is empty.
absl::Status CheckRequiredFlags(const Command& command);

// "unknown command 'NAME'", with the nearest command's name when one is near enough.
absl::Status UnknownCommand(const std::string& name);

}  // namespace timbre

#endif  // TIMBRE_CLIENT_CLI_COMMAND_LINE_H_
