#include "client/cli/nearest_name.h"

#include <algorithm>
#include <numeric>

namespace timbre {

int EditDistance(absl::string_view a, absl::string_view b) {
  // One row of the dynamic-programming table: row[j] = distance of a[0, i) and b[0, j).
  std::vector<int> row(b.size() + 1);
  std::iota(row.begin(), row.end(), 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    int diagonal = row[0];
    row[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const int substitution = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      diagonal = row[j];
      row[j] = std::min({substitution, row[j] + 1, row[j - 1] + 1});
    }
  }
  return row[b.size()];
}

std::optional<std::string> NearestName(absl::string_view name,
                                       const std::vector<std::string>& known) {
  std::optional<std::string> nearest;
  int nearest_distance = 0;
  for (const std::string& candidate : known) {
    const int distance = EditDistance(name, candidate);
    const int allowed = std::max<int>(1, std::max(name.size(), candidate.size()) / 3);
    if (distance > allowed) continue;
    if (!nearest.has_value() || distance < nearest_distance) {
      nearest = candidate;
      nearest_distance = distance;
    }
  }
  return nearest;
}

}  // namespace timbre
