#include "client/cli/command_line.h"

#include <algorithm>
#include <utility>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cli/cli_flags.h"
#include "client/cli/nearest_name.h"

namespace timbre {
namespace {

bool IsBooleanFlag(const std::string& name) {
  const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  return flag != nullptr && flag->IsOfType<bool>();
}

// The flag names `command` takes: its own, then the connection flags.
std::vector<std::string> FlagsOf(const Command& command) {
  std::vector<std::string> names = command.flags;
  names.insert(names.end(), ConnectionFlags().begin(), ConnectionFlags().end());
  return names;
}

bool Contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// The registry flag `argument` sets and the value it sets, or an error naming what is wrong.
absl::StatusOr<std::pair<absl::CommandLineFlag*, std::string>> Resolve(
    const Command& command, const std::vector<std::string>& allowed,
    const FlagArgument& argument) {
  std::string name = argument.name;
  std::optional<std::string> value = argument.value;
  if (!Contains(allowed, name) && absl::StartsWith(name, "no") && !value.has_value() &&
      Contains(allowed, name.substr(2)) && IsBooleanFlag(name.substr(2))) {
    name = name.substr(2);
    value = "false";
  }
  const std::string where = absl::StrCat("'timbre ", command.name, "'");
  if (!Contains(allowed, name)) {
    if (absl::FindCommandLineFlag(name) != nullptr) {
      const std::string takes =
          command.flags.empty()
              ? "takes only the connection flags"
              : absl::StrCat("takes --", absl::StrJoin(command.flags, ", --"),
                             " and the connection flags");
      return absl::InvalidArgumentError(absl::StrCat("flag '--", name, "' is not a flag of ",
                                                     where, "; it ", takes, " (timbre help ",
                                                     command.name, ")"));
    }
    std::string message = absl::StrCat("unknown flag '--", name, "' for ", where);
    if (std::optional<std::string> nearest = NearestName(name, allowed)) {
      absl::StrAppend(&message, "; did you mean '--", *nearest, "'?");
    } else {
      absl::StrAppend(&message, " (timbre help ", command.name, ")");
    }
    return absl::InvalidArgumentError(message);
  }
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  if (flag == nullptr) {
    return absl::InternalError(absl::StrCat(where, " lists flag '--", name, "', never defined"));
  }
  if (!value.has_value()) {
    if (!flag->IsOfType<bool>()) {
      return absl::InvalidArgumentError(
          absl::StrCat("flag '--", name, "' needs a value: --", name, "=VALUE"));
    }
    value = "true";
  }
  return std::make_pair(flag, *std::move(value));
}

}  // namespace

CommandLine SplitCommandLine(int argc, char** argv) {
  CommandLine line;
  bool flags_ended = false;
  for (int i = 1; i < argc; ++i) {
    std::string argument = argv[i];
    if (flags_ended || argument.size() < 2 || argument[0] != '-') {
      (line.command.empty() ? line.command : line.arguments.emplace_back()) = argument;
      continue;
    }
    if (argument == "--") {
      flags_ended = true;
      continue;
    }
    if (argument == "-h" || argument == "--help" || argument == "-help") {
      line.help = true;
      continue;
    }
    argument.erase(0, argument[1] == '-' ? 2 : 1);
    FlagArgument flag;
    const size_t equals = argument.find('=');
    flag.name = argument.substr(0, equals);
    if (equals != std::string::npos) {
      flag.value = argument.substr(equals + 1);
    } else if (absl::FindCommandLineFlag(flag.name) != nullptr && !IsBooleanFlag(flag.name) &&
               i + 1 < argc) {
      flag.value = argv[++i];
    }
    line.flags.push_back(std::move(flag));
  }
  return line;
}

absl::Status ApplyFlags(const Command& command, const std::vector<FlagArgument>& flags) {
  const std::vector<std::string> allowed = FlagsOf(command);
  std::vector<std::pair<absl::CommandLineFlag*, std::string>> settings;
  for (const FlagArgument& argument : flags) {
    auto setting = Resolve(command, allowed, argument);
    if (!setting.ok()) return setting.status();
    settings.push_back(*std::move(setting));
  }
  for (const auto& [flag, value] : settings) {
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid value '", value, "' for --", flag->Name(), ": ", error));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckRequiredFlags(const Command& command) {
  for (const std::string& name : command.required) {
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr || flag->CurrentValue().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " is required"));
    }
  }
  return absl::OkStatus();
}

absl::Status UnknownCommand(const std::string& name) {
  std::vector<std::string> names;
  for (const Command* command : AllCommands()) names.push_back(command->name);
  std::string message = absl::StrCat("unknown command '", name, "'");
  if (std::optional<std::string> nearest = NearestName(name, names)) {
    absl::StrAppend(&message, "; did you mean '", *nearest, "'?");
  } else {
    absl::StrAppend(&message, "; 'timbre help' lists the commands");
  }
  return absl::InvalidArgumentError(message);
}

}  // namespace timbre

