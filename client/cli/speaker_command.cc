// timbre speaker: one speaker in detail (GetSpeaker).
#include <cstdio>

#include "absl/flags/flag.h"
#include "client/cli/cli_flags.h"
#include "client/cli/command.h"
#include "client/cli/command_status.h"

namespace timbre {
namespace {

int RunSpeaker(const CommandContext& context) {
  auto info = context.client.GetSpeaker(absl::GetFlag(FLAGS_speaker));
  if (!info.ok()) return Fail(kExitFailed, info.status());
  std::printf("%s", info->DebugString().c_str());
  return 0;
}

}  // namespace

extern const Command kSpeakerCommand = {
    "speaker",
    "show one speaker in detail: index, dim, vectors, version, state, memory",
    "timbre speaker --speaker=NAME",
    {"speaker"},
    {"speaker"},
    {"timbre speaker --speaker=alice"},
    RunSpeaker};

}  // namespace timbre
