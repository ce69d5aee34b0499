// timbre blend: RVC's retrieval blend of an .npy file's frames with a speaker's index.
#include <cstdio>

#include "absl/flags/flag.h"
#include "client/cli/cli_flags.h"
#include "client/cli/command.h"
#include "client/cli/command_status.h"
#include "client/cli/frame_flags.h"
#include "server/io/npy_file.h"

namespace timbre {
namespace {

int RunBlend(const CommandContext& context) {
  v1::BlendRequest request;
  request.set_speaker(absl::GetFlag(FLAGS_speaker));
  absl::StatusOr<v1::Frames> frames = ReadInputFrames();
  if (!frames.ok()) return Fail(kExitUsage, frames.status());
  *request.mutable_frames() = *std::move(frames);
  *request.mutable_options() = RetrievalOptionsFromFlags();
  auto response = context.client.Blend(request);
  if (!response.ok()) return Fail(kExitFailed, response.status());
  NpyArray out;
  out.descr = response->frames().dtype() == v1::DTYPE_FLOAT16 ? "<f2" : "<f4";
  out.shape = {response->frames().num_frames(), response->frames().dim()};
  out.data = response->frames().data();
  if (absl::Status written = WriteNpy(absl::GetFlag(FLAGS_output), out); !written.ok()) {
    return Fail(kExitFailed, written);
  }
  std::printf("blended %u frames with speaker '%s' version %s in %.3f ms server time\n",
              response->frames().num_frames(), request.speaker().c_str(),
              response->version().c_str(),
              (response->timing().queue_us() + response->timing().search_us() +
               response->timing().blend_us()) / 1e3);
  return 0;
}

}  // namespace

extern const Command kBlendCommand = {
    "blend",
    "blend an .npy file's frames with a speaker's voice, as RVC's retrieval does",
    "timbre blend --speaker=NAME --input=IN.npy --output=OUT.npy [--k=N --index_rate=R "
    "--nprobe=N --k_factor=N]",
    {"speaker", "input", "output", "k", "index_rate", "nprobe", "k_factor"},
    {"speaker", "output", "input"},
    {"timbre blend --speaker=alice --input=in.npy --output=out.npy",
     "timbre blend --speaker=alice --input=in.npy --output=out.npy --index_rate=0.5   # half "
     "retrieved, half original"},
    RunBlend};

}  // namespace timbre
