// timbre feature-sets: the server's feature sets and their files.
#include "client/cli/build_commands.h"
#include "client/cli/command.h"

namespace timbre {
namespace {

int RunFeatureSets(const CommandContext& context) { return FeatureSetsCommand(context.builder); }

}  // namespace

extern const Command kFeatureSetsCommand = {
    "feature-sets",
    "list the feature sets on the server, with their files and digests",
    "timbre feature-sets",
    {},
    {},
    {"timbre feature-sets"},
    RunFeatureSets};

}  // namespace timbre
