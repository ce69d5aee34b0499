// A command of the `timbre` CLI, and the table of them all (command_table.cc).
//
// Each command lives in its own file, <name>_command.cc, as one `Command`: what `timbre help`
// prints about it, the flags it accepts, and the function that runs it. main.cc only dispatches
// through the table.
#ifndef TIMBRE_CLIENT_CLI_COMMAND_H_
#define TIMBRE_CLIENT_CLI_COMMAND_H_

#include <string>
#include <vector>

#include "timbre/builder_client.h"
#include "timbre/timbre_client.h"

namespace timbre {

// What a command runs with: clients of the server named by the connection flags. Neither
// connects before its first call.
struct CommandContext {
  const TimbreClient& client;
  const BuilderClient& builder;
  // The connection flags as client options (for the replicas `timbre build` waits for).
  const TimbreClient::Options& connection;
};

struct Command {
  std::string name;     // as typed: "blend"
  std::string purpose;  // one line, lower case, no final period
  std::string usage;    // "timbre blend --speaker=NAME ..."
  // The flags it takes (names without dashes), besides the connection flags that every command
  // takes (kConnectionFlags); any other flag is refused.
  std::vector<std::string> flags;
  // The flags among `flags` that must not be empty, checked in this order before `run`
  // ("--speaker is required", exit 2).
  std::vector<std::string> required;
  std::vector<std::string> examples;  // command lines, each with a comment after '#' if useful
  // Runs the command with its flags set; returns the process exit code (command_status.h).
  int (*run)(const CommandContext& context);
};

// Every command, in the order `timbre help` lists them.
const std::vector<const Command*>& AllCommands();

// The command named `name`, or nullptr.
const Command* FindCommand(const std::string& name);

}  // namespace timbre

#endif  // TIMBRE_CLIENT_CLI_COMMAND_H_
