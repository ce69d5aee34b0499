#include "client/cli/speaker_text.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace timbre {

std::string SpeakerStateName(v1::SpeakerInfo::State state) {
  switch (state) {
    case v1::SpeakerInfo::STATE_LOADED: return "loaded";
    case v1::SpeakerInfo::STATE_LOADING: return "loading";
    case v1::SpeakerInfo::STATE_FAILED: return "failed";
    case v1::SpeakerInfo::STATE_UNLOADED: return "unloaded";
    default: return "unknown";
  }
}

std::string SpeakerStateLine(const v1::SpeakerInfo& info) {
  std::string line = absl::StrCat("speaker '", info.name(), "' ", SpeakerStateName(info.state()));
  if (info.state() == v1::SpeakerInfo::STATE_LOADED) {
    absl::StrAppendFormat(&line, ": version %s, %llu vectors of dim %u, %s, %.1f MB in memory",
                          info.version(), static_cast<unsigned long long>(info.num_vectors()),
                          info.dim(), info.description(), info.memory_bytes() / 1048576.0);
    if (info.mapped_bytes() > 0) {
      absl::StrAppendFormat(&line, ", %.1f MB mapped", info.mapped_bytes() / 1048576.0);
    }
  }
  return line;
}

}  // namespace timbre
