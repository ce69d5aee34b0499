// How the speaker commands (speakers, load, unload) print a speaker.
#ifndef TIMBRE_CLIENT_CLI_SPEAKER_TEXT_H_
#define TIMBRE_CLIENT_CLI_SPEAKER_TEXT_H_

#include <string>

#include "timbre/v1/timbre.pb.h"

namespace timbre {

// "loaded", "loading", "failed", "unloaded" (or "unknown").
std::string SpeakerStateName(v1::SpeakerInfo::State state);

// One line: the speaker's name and state, and when loaded its version, size, index and memory.
std::string SpeakerStateLine(const v1::SpeakerInfo& info);

}  // namespace timbre

#endif  // TIMBRE_CLIENT_CLI_SPEAKER_TEXT_H_
