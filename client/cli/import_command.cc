// timbre import: registers a directory or .npy file on the server as a feature set.
#include "absl/flags/flag.h"
#include "client/cli/build_commands.h"
#include "client/cli/cli_flags.h"
#include "client/cli/command.h"

namespace timbre {
namespace {

int RunImport(const CommandContext& context) {
  return ImportCommand(context.builder, absl::GetFlag(FLAGS_server_path));
}

}  // namespace

extern const Command kImportCommand = {
    "import",
    "register a directory or .npy file on the server as a feature set",
    "timbre import --server_path=DIR|FILE.npy   (relative to the server's import root)",
    {"server_path"},
    {"server_path"},
    {"timbre import --server_path=alice/3_feature768"},
    RunImport};

}  // namespace timbre
