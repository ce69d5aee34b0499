// timbre search: the raw neighbours (ids and squared distances) of an .npy file's frames.
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/cli_flags.h"
#include "client/cli/command.h"
#include "client/cli/command_status.h"
#include "client/cli/frame_flags.h"

namespace timbre {
namespace {

int RunSearch(const CommandContext& context) {
  v1::SearchRequest request;
  request.set_speaker(absl::GetFlag(FLAGS_speaker));
  absl::StatusOr<v1::Frames> frames = ReadInputFrames();
  if (!frames.ok()) return Fail(kExitUsage, frames.status());
  *request.mutable_frames() = *std::move(frames);
  *request.mutable_options() = RetrievalOptionsFromFlags();
  auto response = context.client.Search(request);
  if (!response.ok()) return Fail(kExitFailed, response.status());
  const uint32_t k = response->k();
  for (uint32_t i = 0; i < response->num_frames(); ++i) {
    std::string line = absl::StrCat("frame ", i, ":");
    for (uint32_t j = 0; j < k; ++j) {
      absl::StrAppendFormat(&line, " %d:%.4g", response->ids(i * k + j),
                            response->distances(i * k + j));
    }
    std::printf("%s\n", line.c_str());
  }
  return 0;
}

}  // namespace

extern const Command kSearchCommand = {
    "search",
    "print each frame's nearest neighbours in a speaker's index",
    "timbre search --speaker=NAME --input=IN.npy [--k=N --nprobe=N --k_factor=N]",
    {"speaker", "input", "k", "nprobe", "k_factor"},
    {"speaker", "input"},
    {"timbre search --speaker=alice --input=in.npy --k=4"},
    RunSearch};

}  // namespace timbre
