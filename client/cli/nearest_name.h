// The known name nearest to a misspelt one, for "did you mean" hints of the `timbre` CLI.
//
// Thread-safe: pure functions.
#ifndef TIMBRE_CLIENT_CLI_NEAREST_NAME_H_
#define TIMBRE_CLIENT_CLI_NEAREST_NAME_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace timbre {

// Levenshtein distance: the fewest insertions, deletions and substitutions of one character
// that turn `a` into `b`.
int EditDistance(absl::string_view a, absl::string_view b);

// The name of `known` nearest to `name` by EditDistance (the first of equals, in `known`'s
// order), if it is near enough to be a likely misspelling: at most one edit per three characters
// of the longer of the two, and at least one edit allowed. nullopt when none is.
std::optional<std::string> NearestName(absl::string_view name,
                                       const std::vector<std::string>& known);

}  // namespace timbre

#endif  // TIMBRE_CLIENT_CLI_NEAREST_NAME_H_
