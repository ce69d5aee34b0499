#include "server/serving/memory_budget.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/status/rejection.h"

namespace timbre {

int64_t MemoryBudget::charged_bytes(absl::string_view name) const {
  auto it = charges_.find(name);
  return it == charges_.end() ? 0 : it->second.bytes;
}

void MemoryBudget::Charge(absl::string_view name, int64_t bytes) {
  auto it = charges_.find(name);
  if (it == charges_.end()) it = charges_.emplace(std::string(name), Entry()).first;
  charged_total_ += bytes - it->second.bytes;
  it->second.bytes = bytes;
  it->second.last_use = ++clock_;
}

int64_t MemoryBudget::Release(absl::string_view name) {
  auto it = charges_.find(name);
  if (it == charges_.end()) return 0;
  const int64_t bytes = it->second.bytes;
  charged_total_ -= bytes;
  charges_.erase(it);
  return bytes;
}

void MemoryBudget::Touch(absl::string_view name) {
  auto it = charges_.find(name);
  if (it != charges_.end()) it->second.last_use = ++clock_;
}

bool MemoryBudget::Fits(int64_t bytes) const {
  return unlimited() || used_bytes() + bytes <= limit_bytes_;
}

absl::StatusOr<std::vector<std::string>> MemoryBudget::ChooseVictims(
    int64_t bytes, absl::string_view last_resort) const {
  if (Fits(bytes)) return std::vector<std::string>();
  if (bytes > limit_bytes_) {
    return Rejected(absl::ResourceExhaustedError(absl::StrCat(
                        "needs ", bytes, " bytes, more than the whole memory budget of ",
                        limit_bytes_, " bytes")),
                    RejectionReason::kTooLarge);
  }
  // Least recently used first; `last_resort` after every other.
  std::vector<std::pair<uint64_t, const std::string*>> order;
  order.reserve(charges_.size());
  for (const auto& [name, entry] : charges_) {
    const bool last = name == last_resort;
    order.emplace_back(last ? UINT64_MAX : entry.last_use, &name);
  }
  std::sort(order.begin(), order.end());
  std::vector<std::string> victims;
  int64_t freed = 0;
  for (const auto& [last_use, name] : order) {
    if (used_bytes() - freed + bytes <= limit_bytes_) break;
    victims.push_back(*name);
    freed += charges_.find(*name)->second.bytes;
  }
  if (used_bytes() - freed + bytes > limit_bytes_) {
    return Rejected(absl::ResourceExhaustedError(absl::StrCat(
                        "needs ", bytes, " bytes but the memory budget of ", limit_bytes_,
                        " bytes has ", reserved_total_, " bytes reserved by loads in progress")),
                    RejectionReason::kOverloaded);
  }
  return victims;
}

}  // namespace timbre
