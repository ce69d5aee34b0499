// timbre upload: uploads a feature set (.npy files) with a progress bar.
#include "absl/flags/flag.h"
#include "client/cli/build_commands.h"
#include "client/cli/cli_flags.h"
#include "client/cli/command.h"

namespace timbre {
namespace {

int RunUpload(const CommandContext& context) {
  return UploadCommand(context.builder, absl::GetFlag(FLAGS_input), ChunkBytesFromFlags());
}

}  // namespace

extern const Command kUploadCommand = {
    "upload",
    "upload a feature set: a directory of .npy files (RVC's 3_feature768) or one file",
    "timbre upload --input=DIR|FILE.npy [--chunk_mb=N]",
    {"input", "chunk_mb"},
    {"input"},
    {"timbre upload --input=logs/alice/3_feature768",
     "timbre upload --input=total_fea.npy --chunk_mb=16"},
    RunUpload};

}  // namespace timbre
