// SpeakerRegistry (speaker_registry.h): loading a speaker's index within the memory budget, and
// installing it. The scan, the calls and the state of the speakers are in speaker_registry.cc.
#include "server/serving/speaker_registry.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/serving/snapshot_loader.h"
#include "server/status/rejection.h"

namespace timbre {
namespace {

// A MemoryBudget error about `speaker`'s index.
absl::Status BudgetError(absl::string_view speaker, const absl::Status& status) {
  return WithMessagePrefix(absl::StrCat("speaker '", speaker, "': the index "), status);
}

}  // namespace

void SpeakerRegistry::RefreshSpeaker(const std::string& name,
                                     const absl::StatusOr<VersionSource>& source,
                                     const std::string& fingerprint) {
  absl::MutexLock load_lock(&load_mutex_);
  const int64_t estimate =
      source.ok() ? EstimateLoadBytes(*source, options_.mmap_indexes, options_.exact_list_scan) : 0;
  {
    absl::MutexLock lock(&mutex_);
    auto it = entries_.find(name);
    if (it != entries_.end()) {
      // An on-demand load or an unload may have come first while this scan waited for its turn.
      const SpeakerState state = it->second.status.state;
      if (state == SpeakerState::kLoading || state == SpeakerState::kUnloaded ||
          it->second.loaded_fingerprint == fingerprint) {
        return;
      }
    }
    const bool hot_swap = it != entries_.end() && it->second.status.state == SpeakerState::kLoaded;
    if (!hot_swap) {
      Entry& entry = entries_[name];
      entry.status.name = name;
      if (source.ok() && options_.lazy_load) {
        entry.status.state = SpeakerState::kUnloaded;
        entry.status.error.clear();
        entry.failure = absl::OkStatus();
        entry.loaded_fingerprint = fingerprint;
        return;
      }
      if (source.ok() && !budget_.Fits(estimate)) {
        // A scan does not unload one speaker for another: this one loads on its first call,
        // unless it could never fit.
        absl::StatusOr<std::vector<std::string>> victims = budget_.ChooseVictims(estimate);
        entry.failure = victims.ok() ? absl::OkStatus() : BudgetError(name, victims.status());
        entry.status.state = victims.ok() ? SpeakerState::kUnloaded : SpeakerState::kFailed;
        entry.status.error = std::string(entry.failure.message());
        entry.loaded_fingerprint = fingerprint;
        return;
      }
      entry.status.state = SpeakerState::kLoading;
    }
  }
  LoadAndInstall(name, source, fingerprint, options_.warmup_on_load);
}

absl::Status SpeakerRegistry::MakeRoomLocked(const std::string& name, int64_t bytes,
                                             absl::string_view last_resort,
                                             std::vector<Eviction>* evictions) {
  absl::StatusOr<std::vector<std::string>> victims = budget_.ChooseVictims(bytes, last_resort);
  if (!victims.ok()) return BudgetError(name, victims.status());
  for (const std::string& victim : *victims) {
    Eviction eviction;
    eviction.speaker = victim;
    eviction.bytes = budget_.Release(victim);
    auto it = entries_.find(victim);
    if (it != entries_.end()) {
      eviction.snapshot = std::move(it->second.status.snapshot);
      // The speaker being reloaded waits for its new version; the others load on their next call.
      it->second.status.state = victim == name ? SpeakerState::kLoading : SpeakerState::kUnloaded;
    }
    evictions->push_back(std::move(eviction));
  }
  return absl::OkStatus();
}

void SpeakerRegistry::Evicted(std::vector<Eviction> evictions) {
  if (options_.observer == nullptr) return;
  for (const Eviction& eviction : evictions) {
    options_.observer->OnEvicted(eviction.speaker, eviction.bytes);
  }
}

absl::StatusOr<std::shared_ptr<const IndexSnapshot>> SpeakerRegistry::LoadWithinBudget(
    const std::string& name, const VersionSource& source, bool warmup, int64_t* reserved) {
  // Make room for the estimate first, so that the unloaded indexes can be freed before this one
  // is read (unless calls in flight still hold them).
  const int64_t estimate =
      EstimateLoadBytes(source, options_.mmap_indexes, options_.exact_list_scan);
  std::vector<Eviction> evictions;
  absl::Status room;
  {
    absl::MutexLock lock(&mutex_);
    room = MakeRoomLocked(name, estimate, /*last_resort=*/name, &evictions);
    if (room.ok()) {
      budget_.Reserve(estimate);
      *reserved = estimate;
    }
  }
  Evicted(std::move(evictions));
  if (!room.ok()) return room;
  SnapshotLoadOptions load;
  load.mmap = options_.mmap_indexes;
  load.exact_list_scan = options_.exact_list_scan;
  load.warmup = warmup;
  load.warmup_options = options_.warmup;
  const absl::Time start = absl::Now();
  absl::StatusOr<std::shared_ptr<const IndexSnapshot>> loaded = LoadSnapshot(name, source, load);
  if (options_.observer != nullptr) {
    options_.observer->OnLoadFinished(name, loaded.status(), absl::Now() - start);
  }
  return loaded;
}

void SpeakerRegistry::LoadAndInstall(const std::string& name,
                                     const absl::StatusOr<VersionSource>& source,
                                     const std::string& fingerprint, bool warmup) {
  int64_t reserved = 0;
  absl::StatusOr<std::shared_ptr<const IndexSnapshot>> loaded =
      source.ok() ? LoadWithinBudget(name, *source, warmup, &reserved) : source.status();
  // A version that cannot even be resolved is a failed load too.
  if (!source.ok() && options_.observer != nullptr) {
    options_.observer->OnLoadFinished(name, source.status(), absl::ZeroDuration());
  }
  std::vector<Eviction> evictions;
  std::vector<SnapshotCallback> waiters;
  absl::StatusOr<std::shared_ptr<const IndexSnapshot>> answer;
  std::shared_ptr<const IndexSnapshot> replaced;  // freed outside the lock
  {
    absl::MutexLock lock(&mutex_);
    budget_.Unreserve(reserved);
    auto it = entries_.find(name);
    // Unloaded by the operator while a scan reloaded it: it stays unloaded.
    if (it == entries_.end() || it->second.status.state == SpeakerState::kUnloaded) return;
    Entry& entry = it->second;
    if (loaded.ok()) {
      // Charge what the index really takes, making more room if the estimate fell short.
      const int64_t old_bytes = budget_.Release(name);
      const int64_t bytes = (*loaded)->index->memory_bytes();
      absl::Status room = MakeRoomLocked(name, bytes, /*last_resort=*/{}, &evictions);
      if (room.ok()) {
        budget_.Charge(name, bytes);
        replaced = std::move(entry.status.snapshot);
        entry.status.snapshot = *loaded;
        entry.status.error.clear();
        entry.failure = absl::OkStatus();
      } else {
        if (old_bytes > 0) budget_.Charge(name, old_bytes);
        loaded = room;
      }
    }
    if (!loaded.ok()) {
      entry.failure = loaded.status();
      entry.status.error = std::string(loaded.status().message());
    }
    // A failed new version leaves the old one serving.
    entry.status.state =
        entry.status.snapshot != nullptr ? SpeakerState::kLoaded : SpeakerState::kFailed;
    entry.loaded_fingerprint = fingerprint;
    waiters = std::move(entry.waiters);
    entry.waiters.clear();
    answer = AnswerLocked(entry);
  }
  Evicted(std::move(evictions));
  for (SnapshotCallback& waiter : waiters) waiter(answer);
}

}  // namespace timbre
