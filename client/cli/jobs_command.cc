// timbre jobs: the server's build jobs, newest first.
#include "client/cli/build_commands.h"
#include "client/cli/command.h"

namespace timbre {
namespace {

int RunJobs(const CommandContext& context) { return JobsCommand(context.builder); }

}  // namespace

extern const Command kJobsCommand = {
    "jobs",
    "list the build jobs, newest first",
    "timbre jobs",
    {},
    {},
    {"timbre jobs"},
    RunJobs};

}  // namespace timbre
