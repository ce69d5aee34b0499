// timbre unload (admin): frees a speaker's memory; its next call loads it again.
#include <cstdio>

#include "absl/flags/flag.h"
#include "client/cli/cli_flags.h"
#include "client/cli/command.h"
#include "client/cli/command_status.h"
#include "client/cli/speaker_text.h"

namespace timbre {
namespace {

int RunUnload(const CommandContext& context) {
  auto info = context.client.UnloadSpeaker(absl::GetFlag(FLAGS_speaker));
  if (!info.ok()) return Fail(kExitFailed, info.status());
  std::printf("%s\n", SpeakerStateLine(*info).c_str());
  return 0;
}

}  // namespace

extern const Command kUnloadCommand = {
    "unload",
    "admin: free a speaker's memory now; its next call loads it again",
    "timbre unload --speaker=NAME",
    {"speaker"},
    {"speaker"},
    {"timbre unload --speaker=alice"},
    RunUnload};

}  // namespace timbre
