// SpeakerRegistry: the speakers being served and the snapshot each one serves.
//
// Refresh() scans the repository: it loads speakers that appeared or whose serving version
// changed on disk, and forgets speakers whose directory disappeared. Loading happens off-lock;
// the new snapshot is swapped in under a short lock, so calls continue throughout: those that
// acquired the old snapshot finish on it. A version whose files are still changing (a copy in
// progress) is loaded only once its files stay unchanged across two scans. When a new version
// fails to load, the old one keeps serving and the failure is reported; a speaker that never
// loaded reports state FAILED with the reason, while every other speaker serves.
//
// With Options::poll_interval > 0 a background thread calls Refresh() at that interval, so new
// versions are picked up without restart.
//
// Thread-safe.
#ifndef TIMBRE_SERVER_CORE_SPEAKER_REGISTRY_H_
#define TIMBRE_SERVER_CORE_SPEAKER_REGISTRY_H_

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/core/index_snapshot.h"
#include "server/core/speaker_repository.h"

namespace timbre {

// What the registry knows of one speaker.
struct SpeakerStatus {
  std::string name;
  // The serving snapshot; null when no version could be loaded (state FAILED).
  std::shared_ptr<const IndexSnapshot> snapshot;
  // Why the last load failed; empty when it succeeded.
  std::string error;
};

class SpeakerRegistry {
 public:
  struct Options {
    // The repository to serve. Required; must outlive the registry.
    const SpeakerRepository* repository = nullptr;
    // How often a background thread rescans the repository. Default 2 s; zero disables the
    // thread (callers then call Refresh() themselves).
    absl::Duration poll_interval = absl::Seconds(2);
  };

  // Scans and loads the repository once before returning, so every speaker on disk is loaded
  // or failed when Create returns. Errors: INVALID_ARGUMENT without a repository; the
  // repository's error if its root cannot be read.
  static absl::StatusOr<std::unique_ptr<SpeakerRegistry>> Create(Options options);

  // Stops the polling thread. Snapshots held by callers stay valid.
  ~SpeakerRegistry();

  // The snapshot serving `speaker`. Errors: INVALID_ARGUMENT for an invalid name; NOT_FOUND for
  // an unknown speaker; FAILED_PRECONDITION, with the load error, for a speaker that failed.
  absl::StatusOr<std::shared_ptr<const IndexSnapshot>> Acquire(absl::string_view speaker) const;

  // Every known speaker, sorted by name.
  std::vector<SpeakerStatus> List() const;

  // One speaker. Errors as Acquire, except that a failed speaker is returned, not an error.
  absl::StatusOr<SpeakerStatus> Get(absl::string_view speaker) const;

  // Scans the repository once (see the class comment). Concurrent calls are serialized.
  // Errors: the repository's, if its root cannot be read; per-speaker failures are recorded in
  // the speakers' status instead.
  absl::Status Refresh();

 private:
  struct Entry {
    SpeakerStatus status;
    std::string loaded_fingerprint;  // fingerprint of the files behind status.snapshot/error
  };

  explicit SpeakerRegistry(Options options) : options_(options) {}
  absl::Status RefreshLocked(bool first_scan) ABSL_EXCLUSIVE_LOCKS_REQUIRED(refresh_mutex_);
  void PollLoop();

  const Options options_;
  absl::Mutex refresh_mutex_;  // serializes scans; held while loading
  mutable absl::Mutex mutex_;  // guards entries_; never held while loading
  std::map<std::string, Entry, std::less<>> entries_ ABSL_GUARDED_BY(mutex_);
  // RVC files seen changed once and not yet stable, by speaker: their fingerprint.
  std::map<std::string, std::string> settling_ ABSL_GUARDED_BY(refresh_mutex_);
  absl::Notification stop_;
  std::thread poller_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_CORE_SPEAKER_REGISTRY_H_
