#include "server/io/random_id.h"

#include <cstdint>
#include <cstring>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace timbre {

std::string NewRandomId(const RandomIdForm& form) {
  std::random_device random;
  const uint64_t bits = (static_cast<uint64_t>(random()) << 32) | random();
  const std::string hex = absl::StrCat(absl::Hex(bits, absl::kZeroPad16));
  return absl::StrCat(form.prefix, hex.substr(hex.size() - form.hex_digits));
}

absl::Status ValidateRandomId(const RandomIdForm& form, absl::string_view id) {
  const size_t prefix = std::strlen(form.prefix);
  bool valid = id.size() == prefix + form.hex_digits && absl::StartsWith(id, form.prefix);
  for (size_t i = prefix; valid && i < id.size(); ++i) {
    valid = (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f');
  }
  if (valid) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(form.kind, " '", id, "' is malformed: expected \"",
                                                 form.prefix, "\" and ", form.hex_digits,
                                                 " lowercase hex digits"));
}

}  // namespace timbre
