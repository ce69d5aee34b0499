#include "client/cli/command_help.h"

#include <algorithm>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/cli/cli_flags.h"

namespace timbre {
namespace {

// "  --name (default: value)\n      help\n" for each flag, as the flag registry describes it;
// "(required)" for those in `required`.
std::string FlagsHelp(const std::vector<std::string>& names,
                      const std::vector<std::string>& required = {}) {
  std::string text;
  for (const std::string& name : names) {
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) continue;
    const std::string default_value = flag->DefaultValue();
    const bool is_required = std::find(required.begin(), required.end(), name) != required.end();
    absl::StrAppend(&text, "  --", name, " (",
                    is_required ? "required"
                                : absl::StrCat("default: ",
                                               default_value.empty() ? "none" : default_value),
                    ")\n      ", flag->Help(), "\n");
  }
  return text;
}

}  // namespace

std::string OverviewHelp() {
  std::string text =
      "usage: timbre COMMAND [--flag=value ...]\n\n"
      "timbre is the command-line client of a timbre server (RVC's feature retrieval over "
      "gRPC).\n\nCommands:\n";
  for (const Command* command : AllCommands()) {
    absl::StrAppendFormat(&text, "  %-14s %s\n", command->name, command->purpose);
  }
  absl::StrAppend(&text, "\nConnection flags, taken by every command:\n",
                  FlagsHelp(ConnectionFlags()),
                  "\n'timbre help COMMAND' or 'timbre COMMAND --help' shows a command's flags and "
                  "examples.\nExit codes: 0 success, 1 the server refused or failed, 2 bad usage "
                  "or an unreadable input file.\n");
  return text;
}

std::string CommandHelp(const Command& command) {
  std::string text =
      absl::StrCat("timbre ", command.name, ": ", command.purpose, "\n\nusage: ", command.usage,
                   "\n");
  if (!command.flags.empty()) {
    absl::StrAppend(&text, "\nFlags:\n", FlagsHelp(command.flags, command.required));
  }
  if (!command.examples.empty()) {
    absl::StrAppend(&text, "\nExamples:\n  ", absl::StrJoin(command.examples, "\n  "), "\n");
  }
  absl::StrAppend(&text, "\nConnection flags (every command; 'timbre help' explains them): --",
                  absl::StrJoin(ConnectionFlags(), ", --"), "\n");
  return text;
}

}  // namespace timbre
