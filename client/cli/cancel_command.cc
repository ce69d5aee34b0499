// timbre cancel: cancels a build job (a running one stops at its next check).
#include "absl/flags/flag.h"
#include "client/cli/build_commands.h"
#include "client/cli/cli_flags.h"
#include "client/cli/command.h"

namespace timbre {
namespace {

int RunCancel(const CommandContext& context) {
  return CancelCommand(context.builder, absl::GetFlag(FLAGS_id));
}

}  // namespace

extern const Command kCancelCommand = {
    "cancel",
    "cancel a build job; the serving version stays as it was",
    "timbre cancel --id=JOB",
    {"id"},
    {"id"},
    {"timbre cancel --id=job-ab433a1ef0ec"},
    RunCancel};

}  // namespace timbre
