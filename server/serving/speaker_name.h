// Speaker names: the one rule for which names reach the repository on disk.
//
// A valid name is 1-64 characters from [A-Za-z0-9._-] that does not start with '.' or '-'. Such a
// name is always a single, non-hidden path component, so no name can reach outside the
// repository ("..", "a/b", "/etc" and "" are all rejected).
#ifndef TIMBRE_SERVER_SERVING_SPEAKER_NAME_H_
#define TIMBRE_SERVER_SERVING_SPEAKER_NAME_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace timbre {

inline constexpr int kMaxSpeakerNameLength = 64;

// OK if `name` is a valid speaker name, else INVALID_ARGUMENT naming the offending character.
absl::Status ValidateSpeakerName(absl::string_view name);

}  // namespace timbre

#endif  // TIMBRE_SERVER_SERVING_SPEAKER_NAME_H_
