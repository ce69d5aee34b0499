// MemoryBudget: the bytes of loaded indexes, charged against the operator's limit, and the choice
// of which to unload, least recently used first, to make room for another.
//
// Each charged name has a byte count and the time of its last use on a logical clock (advanced by
// Charge and Touch). A reservation holds room for a load in progress, whose size is known only
// roughly until the index is loaded. used_bytes() = charges + reservations never exceeds the
// limit as long as callers charge or reserve only what Fits() after releasing what
// ChooseVictims() names.
//
// Thread-compatible: the SpeakerRegistry calls it under its own lock.
#ifndef TIMBRE_SERVER_SERVING_MEMORY_BUDGET_H_
#define TIMBRE_SERVER_SERVING_MEMORY_BUDGET_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace timbre {

class MemoryBudget {
 public:
  // `limit_bytes` 0 means unlimited: everything fits and nothing is ever chosen to make room.
  // REQUIRES: limit_bytes >= 0.
  explicit MemoryBudget(int64_t limit_bytes) : limit_bytes_(limit_bytes) {}

  int64_t limit_bytes() const { return limit_bytes_; }
  bool unlimited() const { return limit_bytes_ == 0; }
  // Charged plus reserved bytes.
  int64_t used_bytes() const { return charged_total_ + reserved_total_; }
  // The charge of `name`; 0 if it has none.
  int64_t charged_bytes(absl::string_view name) const;

  // Charges `name` `bytes` (>= 0), replacing its previous charge; counts as a use.
  void Charge(absl::string_view name, int64_t bytes);
  // Removes the charge of `name` and returns it (0 if it had none).
  int64_t Release(absl::string_view name);
  // Records a use of `name`: it becomes the most recently used. No effect if it has no charge.
  void Touch(absl::string_view name);
  // Holds `bytes` (>= 0) for a load in progress, and gives them back.
  void Reserve(int64_t bytes) { reserved_total_ += bytes; }
  void Unreserve(int64_t bytes) { reserved_total_ -= bytes; }

  // True if `bytes` more fit within the limit without releasing anything.
  bool Fits(int64_t bytes) const;

  // The charged names to release, least recently used first, so that `bytes` more fit. The
  // charge of `last_resort` (usually the speaker being reloaded) is chosen only when releasing
  // every other charge is not enough. Empty when `bytes` fit already.
  // Errors: RESOURCE_EXHAUSTED, naming the sizes, when `bytes` exceed the whole limit (marked
  // RejectionReason::kTooLarge, rejection.h) or when releasing every charge still leaves too
  // little room because the rest is reserved by other loads (marked kOverloaded).
  absl::StatusOr<std::vector<std::string>> ChooseVictims(
      int64_t bytes, absl::string_view last_resort = {}) const;

 private:
  struct Entry {
    int64_t bytes = 0;
    uint64_t last_use = 0;
  };

  const int64_t limit_bytes_;
  std::map<std::string, Entry, std::less<>> charges_;
  int64_t charged_total_ = 0;
  int64_t reserved_total_ = 0;
  uint64_t clock_ = 0;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_SERVING_MEMORY_BUDGET_H_
