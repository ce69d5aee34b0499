// timbre load (admin): loads a speaker's index now, optionally warmed up.
#include <cstdio>

#include "absl/flags/flag.h"
#include "client/cli/cli_flags.h"
#include "client/cli/command.h"
#include "client/cli/command_status.h"
#include "client/cli/speaker_text.h"

namespace timbre {
namespace {

int RunLoadSpeaker(const CommandContext& context) {
  auto info = context.client.LoadSpeaker(absl::GetFlag(FLAGS_speaker),
                                         absl::GetFlag(FLAGS_warmup_index));
  if (!info.ok()) return Fail(kExitFailed, info.status());
  std::printf("%s\n", SpeakerStateLine(*info).c_str());
  return 0;
}

}  // namespace

extern const Command kLoadCommand = {
    "load",
    "admin: load a speaker's index now (a failed one again), unloading others as needed",
    "timbre load --speaker=NAME [--warmup_index]",
    {"speaker", "warmup_index"},
    {"speaker"},
    {"timbre load --speaker=alice --warmup_index --token_file=admin.token --tls_ca=ca.pem"},
    RunLoadSpeaker};

}  // namespace timbre
