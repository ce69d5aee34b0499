// timbre job: one build job and its report, or followed live.
#include "absl/flags/flag.h"
#include "client/cli/build_commands.h"
#include "client/cli/cli_flags.h"
#include "client/cli/command.h"

namespace timbre {
namespace {

int RunJob(const CommandContext& context) {
  return JobCommand(context.builder, absl::GetFlag(FLAGS_id), absl::GetFlag(FLAGS_watch));
}

}  // namespace

extern const Command kJobCommand = {
    "job",
    "show a build job and its report, or follow it live until it ends",
    "timbre job --id=JOB [--watch]",
    {"id", "watch"},
    {"id"},
    {"timbre job --id=job-ab433a1ef0ec --watch"},
    RunJob};

}  // namespace timbre
