// The help of the `timbre` CLI, from the command table and the flag registry: the list of
// commands, and one command's purpose, usage, flags (name, default, help) and examples.
//
// Thread-compatible.
#ifndef TIMBRE_CLIENT_CLI_COMMAND_HELP_H_
#define TIMBRE_CLIENT_CLI_COMMAND_HELP_H_

#include <string>

#include "client/cli/command.h"

namespace timbre {

// `timbre help`: usage, every command with its purpose, the connection flags, the exit codes.
std::string OverviewHelp();

// `timbre help COMMAND`: the command's purpose, usage, its own flags, examples, and the names
// of the connection flags.
std::string CommandHelp(const Command& command);

}  // namespace timbre

#endif  // TIMBRE_CLIENT_CLI_COMMAND_HELP_H_
