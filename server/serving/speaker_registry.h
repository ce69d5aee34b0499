// SpeakerRegistry: the speakers being served, the snapshot each one serves, and the memory their
// indexes take.
//
// A speaker is in one of four states:
//   LOADED    a snapshot serves (with `error` set if a newer version failed to load)
//   LOADING   no snapshot serves yet; a load is queued or running and calls wait for it
//   FAILED    no version could be loaded; `error` says why, and calls fail
//   UNLOADED  known but not in memory: unloaded by the operator or to make room under the memory
//             budget, or left unloaded at a scan because it did not fit. Its next call loads it.
//
// Refresh() scans the repository: it loads speakers that appeared or whose serving version
// changed on disk, and forgets speakers whose directory disappeared. Loading happens off-lock;
// the new snapshot is swapped in under a short lock, so calls continue throughout: those that
// acquired the old snapshot finish on it. A version whose files are still changing (a copy in
// progress) is loaded only once its files stay unchanged across two scans. When a new version
// fails to load, the old one keeps serving and the failure is reported; a speaker that never
// loaded reports state FAILED with the reason, while every other speaker serves. An UNLOADED
// speaker is not loaded by a scan: its next call loads whatever version serves then.
//
// Memory budget: with Options::memory_budget_bytes > 0, the memory_bytes() of the loaded indexes
// together never exceed the budget. A load that would exceed it first unloads the least recently
// used loaded speakers (by their last Acquire); calls in flight keep their snapshots, which the
// last of them frees. Before a load the index is charged its file size (0 when memory-mapped),
// after it its memory_bytes(). A speaker whose index alone exceeds the budget fails with
// RESOURCE_EXHAUSTED naming both sizes. Memory-mapped inverted lists (Options::mmap_indexes)
// are file-backed pages the kernel can drop and re-read, so they are not charged (see
// FaissIndex::mapped_bytes()); Usage() reports them separately. A scan loads a new speaker only
// if its estimate fits without unloading another, and leaves it UNLOADED otherwise (a
// memory-mapped index, estimated at 0, may still unload others once its heap size is known).
//
// Loads run one at a time, never under the registry's lock: on-demand loads (Acquire of an
// UNLOADED speaker, Load) on the registry's loader thread, scans on the thread that scans.
// Concurrent calls for a speaker being loaded wait for that one load.
//
// With Options::poll_interval > 0 a background thread calls Refresh() at that interval, so new
// versions are picked up without restart.
//
// Create scans once before returning unless Options::scan_on_create is false; then the first
// successful Refresh() is the first scan, and until it has finished Ready() is UNAVAILABLE and so
// is every call about a speaker (a server can listen while it scans, and report not serving).
//
// Thread-safe.
#ifndef TIMBRE_SERVER_SERVING_SPEAKER_REGISTRY_H_
#define TIMBRE_SERVER_SERVING_SPEAKER_REGISTRY_H_

#include <array>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/serving/index_snapshot.h"
#include "server/serving/index_warmup.h"
#include "server/serving/memory_budget.h"
#include "server/serving/speaker_repository.h"

namespace timbre {

enum class SpeakerState { kLoaded = 0, kLoading = 1, kFailed = 2, kUnloaded = 3 };
inline constexpr int kSpeakerStateCount = 4;

// "loaded", "loading", "failed" or "unloaded".
absl::string_view SpeakerStateName(SpeakerState state);

// What the registry knows of one speaker.
struct SpeakerStatus {
  std::string name;
  SpeakerState state = SpeakerState::kUnloaded;
  // The serving snapshot; set exactly when state is kLoaded.
  std::shared_ptr<const IndexSnapshot> snapshot;
  // Why the last load failed; empty when it succeeded.
  std::string error;
};

// Totals over every speaker, for monitoring.
struct RegistryUsage {
  // Speakers by state, indexed by static_cast<int>(SpeakerState).
  std::array<int, kSpeakerStateCount> speakers{};
  // memory_bytes() of the loaded indexes: what the budget is charged.
  int64_t memory_bytes = 0;
  // mapped_bytes() of the loaded indexes (memory-mapped lists; not charged).
  int64_t mapped_bytes = 0;
  // Options::memory_budget_bytes; 0 = unlimited.
  int64_t budget_bytes = 0;
};

// Told of loads and evictions, e.g. to record metrics and log them. Called on the thread that
// loaded, without the lock that guards the speakers. Implementations must be thread-safe and
// must not block; of the registry they may call only List, Get and Usage.
class SpeakerRegistryObserver {
 public:
  virtual ~SpeakerRegistryObserver() = default;
  // A load of `speaker`'s index finished with `status` after `duration` (warm-up included).
  virtual void OnLoadFinished(absl::string_view speaker, const absl::Status& status,
                              absl::Duration duration) = 0;
  // `speaker` was unloaded to make room under the memory budget, uncharging `bytes`.
  virtual void OnEvicted(absl::string_view speaker, int64_t bytes) = 0;
};

using SnapshotCallback =
    absl::AnyInvocable<void(absl::StatusOr<std::shared_ptr<const IndexSnapshot>>)>;
using SpeakerStatusCallback = absl::AnyInvocable<void(absl::StatusOr<SpeakerStatus>)>;

class SpeakerRegistry {
 public:
  struct Options {
    // The repository to serve. Required; must outlive the registry.
    const SpeakerRepository* repository = nullptr;
    // How often a background thread rescans the repository. Default 2 s; zero disables the
    // thread (callers then call Refresh() themselves).
    absl::Duration poll_interval = absl::Seconds(2);
    // Most bytes the loaded indexes may take together (their memory_bytes()). Default 0:
    // unlimited. Must not be negative.
    int64_t memory_budget_bytes = 0;
    // Memory-map the inverted lists of IVF indexes instead of reading them into the heap.
    // Default false.
    bool mmap_indexes = false;
    // Scan IVF-Flat lists with timbre's exact list scan (a quarter more memory, counted in the
    // budget). Default true.
    bool exact_list_scan = true;
    // Run warm-up searches through every newly loaded index before it serves. Default false.
    bool warmup_on_load = false;
    // The warm-up searches (used when warming up).
    WarmupOptions warmup;
    // Told of loads and evictions. Optional (default none); must outlive the registry.
    SpeakerRegistryObserver* observer = nullptr;
    // Leave every speaker a scan finds UNLOADED (it loads on its first call) instead of loading
    // it; loaded speakers still load their new versions at a scan. Default false.
    bool lazy_load = false;
    // Scan the repository in Create. Default true. When false, the first successful Refresh()
    // (the caller's or the polling thread's) is the first scan.
    bool scan_on_create = true;
  };

  // With Options::scan_on_create, scans the repository once before returning, so every speaker
  // on disk is loaded, failed or (under a budget) unloaded when Create returns. Errors:
  // INVALID_ARGUMENT without a repository or with a negative budget; the repository's error if
  // its root cannot be read (only when scanning on create).
  static absl::StatusOr<std::unique_ptr<SpeakerRegistry>> Create(Options options);

  // Stop()s. Snapshots held by callers stay valid.
  ~SpeakerRegistry();

  // The snapshot serving `speaker`, loading it first if it is UNLOADED (evicting others as the
  // budget requires) and waiting for a load in progress. Counts as a use of the speaker.
  // Errors: INVALID_ARGUMENT for an invalid name; NOT_FOUND for an unknown speaker;
  // FAILED_PRECONDITION, with the load error, for a speaker that failed to load;
  // RESOURCE_EXHAUSTED, naming the sizes, for one whose index alone exceeds the memory budget;
  // UNAVAILABLE for an unloaded speaker once the registry is stopping, and for every speaker
  // before the first scan (see Ready()).
  // REQUIRES: not called from a callback of AcquireAsync or Load (it may wait for a load).
  absl::StatusOr<std::shared_ptr<const IndexSnapshot>> Acquire(absl::string_view speaker);

  // As Acquire, without blocking: `done` runs exactly once, inline when the answer is known at
  // once (a loaded, failed or unknown speaker), otherwise on the thread that finishes the load.
  void AcquireAsync(absl::string_view speaker, SnapshotCallback done);

  // Loads `speaker` now: an UNLOADED speaker is loaded and a FAILED one retried, evicting others
  // as the budget requires; a LOADED one is answered as it is, a LOADING one once its load
  // finished. `warmup` warms this load up even when Options::warmup_on_load is off. `done`
  // runs as for AcquireAsync, with the speaker's status after the load.
  // Errors: as Acquire, with FAILED_PRECONDITION naming the reason when the load fails.
  void Load(absl::string_view speaker, bool warmup, SpeakerStatusCallback done);

  // Unloads `speaker`: its snapshot is dropped (calls in flight finish on it), its memory is no
  // longer charged, and it becomes UNLOADED, so its next call loads it again. A FAILED speaker
  // becomes UNLOADED too (its next call retries the load). Returns the new status.
  // Errors: INVALID_ARGUMENT for an invalid name; NOT_FOUND for an unknown speaker;
  // FAILED_PRECONDITION for a speaker being loaded; UNAVAILABLE before the first scan.
  absl::StatusOr<SpeakerStatus> Unload(absl::string_view speaker);

  // OK once a scan of the repository has finished; UNAVAILABLE, saying so, before.
  absl::Status Ready() const;

  // Every known speaker, sorted by name (none before the first scan).
  std::vector<SpeakerStatus> List() const;

  // One speaker. Errors as Acquire for an invalid name, an unknown speaker or a registry not yet
  // Ready(); never loads.
  absl::StatusOr<SpeakerStatus> Get(absl::string_view speaker) const;

  // Speakers by state and the memory of the loaded indexes.
  RegistryUsage Usage() const;

  // Scans the repository once (see the class comment). Concurrent calls are serialized.
  // Errors: the repository's, if its root cannot be read; per-speaker failures are recorded in
  // the speakers' status instead.
  absl::Status Refresh();

  // Stops the background work: the polling thread and on-demand loading. Waits for the load in
  // progress, answers the queued ones with UNAVAILABLE, and from then on answers calls for
  // UNLOADED speakers with UNAVAILABLE. Call it before the targets of pending callbacks go away
  // (the server calls it before stopping its search workers). Idempotent.
  void Stop();

 private:
  struct Entry {
    SpeakerStatus status;
    // Why the last load failed; OK if it did not. Its code is what calls of a FAILED speaker get
    // (RESOURCE_EXHAUSTED for the budget, FAILED_PRECONDITION otherwise).
    absl::Status failure;
    std::string loaded_fingerprint;  // fingerprint of the files behind status.snapshot/error
    // Callers waiting for the load in progress (state kLoading).
    std::vector<SnapshotCallback> waiters;
    // The queued load was asked to warm up (Load with warmup).
    bool warmup_requested = false;
  };
  // A speaker unloaded to make room; its snapshot is freed and the observer told off-lock.
  struct Eviction {
    std::string speaker;
    int64_t bytes = 0;
    std::shared_ptr<const IndexSnapshot> snapshot;
  };

  explicit SpeakerRegistry(Options options)
      : options_(options), budget_(options.memory_budget_bytes) {}
  absl::Status RefreshLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(refresh_mutex_);
  // NOT_FOUND for a speaker the registry does not know, or UNAVAILABLE before the first scan.
  absl::Status UnknownSpeakerLocked(absl::string_view speaker) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Loads a speaker found changed by a scan, if its state and the budget allow.
  void RefreshSpeaker(const std::string& name, const absl::StatusOr<VersionSource>& source,
                      const std::string& fingerprint) ABSL_EXCLUSIVE_LOCKS_REQUIRED(refresh_mutex_);
  // Answers `done` at once, or queues it behind a load (starting one for an UNLOADED speaker, or
  // for a FAILED one if `retry_failed`).
  void Admit(absl::string_view speaker, bool retry_failed, bool warmup, SnapshotCallback done);
  // Loads `name` from `source` within the budget, installs the outcome in its entry and answers
  // the entry's waiters.
  void LoadAndInstall(const std::string& name, const absl::StatusOr<VersionSource>& source,
                      const std::string& fingerprint, bool warmup)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(load_mutex_) ABSL_LOCKS_EXCLUDED(mutex_);
  // Makes room for `source`'s estimated size and loads it; sets `reserved` to the bytes it
  // reserved (to be given back once the outcome is installed).
  absl::StatusOr<std::shared_ptr<const IndexSnapshot>> LoadWithinBudget(
      const std::string& name, const VersionSource& source, bool warmup, int64_t* reserved)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(load_mutex_) ABSL_LOCKS_EXCLUDED(mutex_);
  // Unloads the least recently used speakers until `bytes` more fit (`last_resort` last).
  absl::Status MakeRoomLocked(const std::string& name, int64_t bytes,
                              absl::string_view last_resort, std::vector<Eviction>* evictions)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // What a caller of `entry`'s speaker gets now.
  static absl::StatusOr<std::shared_ptr<const IndexSnapshot>> AnswerLocked(const Entry& entry);
  void Evicted(std::vector<Eviction> evictions) ABSL_LOCKS_EXCLUDED(mutex_);
  bool LoadQueuedOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void PollLoop();
  void LoaderLoop();

  const Options options_;
  absl::Mutex refresh_mutex_ ABSL_ACQUIRED_BEFORE(load_mutex_);  // serializes scans
  absl::Mutex load_mutex_ ABSL_ACQUIRED_BEFORE(mutex_);  // held while loading: one load at a time
  mutable absl::Mutex mutex_;  // guards the fields below; never held while loading
  std::map<std::string, Entry, std::less<>> entries_ ABSL_GUARDED_BY(mutex_);
  MemoryBudget budget_ ABSL_GUARDED_BY(mutex_);
  // Speakers whose on-demand load is queued for the loader thread, in order.
  std::deque<std::string> load_queue_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  // A scan has finished: entries_ reflects the repository.
  bool scanned_ ABSL_GUARDED_BY(mutex_) = false;
  // RVC files seen changed once and not yet stable, by speaker: their fingerprint.
  std::map<std::string, std::string> settling_ ABSL_GUARDED_BY(refresh_mutex_);
  absl::Notification stop_polling_;
  std::thread poller_;
  std::thread loader_;
  absl::Mutex stop_mutex_;  // serializes Stop()
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_SERVING_SPEAKER_REGISTRY_H_
