// The table of the `timbre` CLI's commands: the one place that lists them.
#include "client/cli/command.h"

namespace timbre {

extern const Command kSpeakersCommand;
extern const Command kSpeakerCommand;
extern const Command kBlendCommand;
extern const Command kSearchCommand;
extern const Command kBenchCommand;
extern const Command kLoadCommand;
extern const Command kUnloadCommand;
extern const Command kUploadCommand;
extern const Command kImportCommand;
extern const Command kFeatureSetsCommand;
extern const Command kBuildCommand;
extern const Command kJobsCommand;
extern const Command kJobCommand;
extern const Command kCancelCommand;

const std::vector<const Command*>& AllCommands() {
  static const std::vector<const Command*> commands = {
      &kSpeakersCommand, &kSpeakerCommand, &kBlendCommand,       &kSearchCommand,
      &kBenchCommand,    &kLoadCommand,    &kUnloadCommand,      &kUploadCommand,
      &kImportCommand,   &kFeatureSetsCommand, &kBuildCommand,   &kJobsCommand,
      &kJobCommand,      &kCancelCommand};
  return commands;
}

const Command* FindCommand(const std::string& name) {
  for (const Command* command : AllCommands()) {
    if (command->name == name) return command;
  }
  return nullptr;
}

}  // namespace timbre
