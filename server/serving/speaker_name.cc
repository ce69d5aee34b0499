#include "server/serving/speaker_name.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace timbre {

absl::Status ValidateSpeakerName(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("speaker name is empty");
  if (name.size() > kMaxSpeakerNameLength) {
    return absl::InvalidArgumentError(absl::StrCat("speaker name is ", name.size(),
                                                   " characters; the limit is ",
                                                   kMaxSpeakerNameLength));
  }
  if (name.front() == '.' || name.front() == '-') {
    return absl::InvalidArgumentError(
        absl::StrFormat("speaker name '%s' must not start with '%c'", absl::CHexEscape(name),
                        name.front()));
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' &&
        c != '-') {
      return absl::InvalidArgumentError(absl::StrFormat(
          "speaker name '%s' has the character '%s'; allowed are A-Z a-z 0-9 . _ -",
          absl::CHexEscape(name), absl::CHexEscape(absl::string_view(&c, 1))));
    }
  }
  return absl::OkStatus();
}

}  // namespace timbre
