// Random ids with a fixed prefix and a fixed number of lowercase hex digits ("job-1a2b3c4d5e6f"),
// for names that must not collide and must be checked before they touch the file system: job
// ids, feature-set ids, staging directories.
//
// Thread-safe: free functions without shared state.
#ifndef TIMBRE_SERVER_IO_RANDOM_ID_H_
#define TIMBRE_SERVER_IO_RANDOM_ID_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace timbre {

// The form of one kind of id.
struct RandomIdForm {
  // Names the kind in error messages, e.g. "job id".
  const char* kind;
  // What every id starts with, e.g. "job-".
  const char* prefix;
  // Number of lowercase hex digits after the prefix: 1 to 16.
  int hex_digits;
};

// Job ids: "job-" and 12 lowercase hex digits.
inline constexpr RandomIdForm kJobIdForm{"job id", "job-", 12};
// Feature-set ids: "fs-" and 16 lowercase hex digits.
inline constexpr RandomIdForm kFeatureSetIdForm{"feature set id", "fs-", 16};

// A new id of `form`: its prefix and hex_digits random lowercase hex digits (from
// std::random_device).
std::string NewRandomId(const RandomIdForm& form);

// OK if `id` has `form` exactly, else INVALID_ARGUMENT naming the id and the expected form:
// "job id 'x' is malformed: expected \"job-\" and 12 lowercase hex digits".
absl::Status ValidateRandomId(const RandomIdForm& form, absl::string_view id);

}  // namespace timbre

#endif  // TIMBRE_SERVER_IO_RANDOM_ID_H_
