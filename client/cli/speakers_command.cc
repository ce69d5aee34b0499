// timbre speakers: the server's speakers and their state, one line each.
#include <cstdio>

#include "client/cli/command.h"
#include "client/cli/command_status.h"
#include "client/cli/speaker_text.h"

namespace timbre {
namespace {

int RunSpeakers(const CommandContext& context) {
  auto speakers = context.client.ListSpeakers();
  if (!speakers.ok()) return Fail(kExitFailed, speakers.status());
  std::printf("%-24s %-8s %5s %10s %-22s %6s %-12s %10s\n", "SPEAKER", "STATE", "DIM", "VECTORS",
              "INDEX", "NPROBE", "VERSION", "MEMORY_MB");
  for (const v1::SpeakerInfo& s : speakers->speakers()) {
    std::printf("%-24s %-8s %5u %10llu %-22s %6u %-12s %10.1f\n", s.name().c_str(),
                SpeakerStateName(s.state()).c_str(), s.dim(),
                static_cast<unsigned long long>(s.num_vectors()), s.description().c_str(),
                s.nprobe(), s.version().c_str(), s.memory_bytes() / 1048576.0);
    if (!s.error().empty()) std::printf("  error: %s\n", s.error().c_str());
  }
  return 0;
}

}  // namespace

extern const Command kSpeakersCommand = {
    "speakers",
    "list the speakers and their state (loaded, loading, failed, unloaded)",
    "timbre speakers",
    {},
    {},
    {"timbre speakers --server=voices.example:50051"},
    RunSpeakers};

}  // namespace timbre
