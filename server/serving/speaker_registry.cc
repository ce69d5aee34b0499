#include "server/serving/speaker_registry.h"

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/serving/speaker_name.h"

namespace timbre {
namespace {

constexpr char kNotScanned[] =
    "the speaker repository has not been scanned yet (the server is starting); retry shortly";

std::string FingerprintOf(const absl::StatusOr<VersionSource>& source) {
  return source.ok() ? source->fingerprint : absl::StrCat("error:", source.status().message());
}

}  // namespace

absl::string_view SpeakerStateName(SpeakerState state) {
  switch (state) {
    case SpeakerState::kLoaded: return "loaded";
    case SpeakerState::kLoading: return "loading";
    case SpeakerState::kFailed: return "failed";
    case SpeakerState::kUnloaded: return "unloaded";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<SpeakerRegistry>> SpeakerRegistry::Create(Options options) {
  if (options.repository == nullptr) {
    return absl::InvalidArgumentError("SpeakerRegistry needs a repository");
  }
  if (options.memory_budget_bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat("memory budget is ", options.memory_budget_bytes,
                                                   " bytes; it must be >= 0 (0 = unlimited)"));
  }
  std::unique_ptr<SpeakerRegistry> registry(new SpeakerRegistry(options));
  if (options.scan_on_create) {
    if (absl::Status scanned = registry->Refresh(); !scanned.ok()) return scanned;
  }
  registry->loader_ = std::thread([r = registry.get()] { r->LoaderLoop(); });
  if (options.poll_interval > absl::ZeroDuration()) {
    registry->poller_ = std::thread([r = registry.get()] { r->PollLoop(); });
  }
  return registry;
}

SpeakerRegistry::~SpeakerRegistry() { Stop(); }

void SpeakerRegistry::Stop() {
  absl::MutexLock stop_lock(&stop_mutex_);
  std::vector<std::pair<std::string, SnapshotCallback>> cancelled;
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
    for (const std::string& name : load_queue_) {
      auto it = entries_.find(name);
      if (it == entries_.end() || it->second.status.state != SpeakerState::kLoading) continue;
      it->second.status.state = SpeakerState::kUnloaded;
      for (SnapshotCallback& waiter : it->second.waiters) {
        cancelled.emplace_back(name, std::move(waiter));
      }
      it->second.waiters.clear();
    }
    load_queue_.clear();
  }
  for (auto& [name, waiter] : cancelled) {
    waiter(absl::UnavailableError(
        absl::StrCat("speaker '", name, "' was not loaded: the server is stopping")));
  }
  if (!stop_polling_.HasBeenNotified()) stop_polling_.Notify();
  if (poller_.joinable()) poller_.join();
  if (loader_.joinable()) loader_.join();
  absl::MutexLock wait_for_load(&load_mutex_);  // a scan's load in progress finishes first
}

void SpeakerRegistry::PollLoop() {
  while (!stop_polling_.WaitForNotificationWithTimeout(options_.poll_interval)) {
    // Errors (an unreadable root) leave the loaded speakers serving; the next scan retries.
    Refresh().IgnoreError();
  }
}

bool SpeakerRegistry::LoadQueuedOrStopping() const {
  return stopping_ || !load_queue_.empty();
}

void SpeakerRegistry::LoaderLoop() {
  for (;;) {
    std::string name;
    bool warmup = options_.warmup_on_load;
    {
      absl::MutexLock lock(&mutex_);
      mutex_.Await(absl::Condition(this, &SpeakerRegistry::LoadQueuedOrStopping));
      if (load_queue_.empty()) return;  // stopping
      name = std::move(load_queue_.front());
      load_queue_.pop_front();
      auto it = entries_.find(name);
      if (it == entries_.end() || it->second.status.state != SpeakerState::kLoading) continue;
      warmup = warmup || it->second.warmup_requested;
      it->second.warmup_requested = false;
    }
    absl::MutexLock load_lock(&load_mutex_);
    const absl::StatusOr<VersionSource> source =
        options_.repository->ResolveServingVersion(name);
    LoadAndInstall(name, source, FingerprintOf(source), warmup);
  }
}

absl::Status SpeakerRegistry::Refresh() {
  absl::MutexLock lock(&refresh_mutex_);
  return RefreshLocked();
}

absl::Status SpeakerRegistry::Ready() const {
  absl::MutexLock lock(&mutex_);
  if (scanned_) return absl::OkStatus();
  return absl::UnavailableError(kNotScanned);
}

absl::Status SpeakerRegistry::UnknownSpeakerLocked(absl::string_view speaker) const {
  if (!scanned_) {
    return absl::UnavailableError(absl::StrCat("speaker '", speaker, "': ", kNotScanned));
  }
  return absl::NotFoundError(absl::StrCat("speaker '", speaker, "' not found"));
}

absl::Status SpeakerRegistry::RefreshLocked() {
  absl::StatusOr<std::vector<std::string>> names = options_.repository->ListSpeakers();
  if (!names.ok()) return names.status();
  // The first scan loads RVC files without waiting for them to settle: nothing older serves.
  const bool first_scan = !Ready().ok();
  for (const std::string& name : *names) {
    const absl::StatusOr<VersionSource> source = options_.repository->ResolveServingVersion(name);
    const std::string fingerprint = FingerprintOf(source);
    // Numbered versions are published atomically; RVC files may still be being copied in.
    const bool needs_settling = source.ok() && !source->numbered;
    {
      absl::MutexLock entries_lock(&mutex_);
      auto it = entries_.find(name);
      // Loading and unloaded speakers load whatever version serves when their load runs.
      if (it != entries_.end() && (it->second.loaded_fingerprint == fingerprint ||
                                   it->second.status.state == SpeakerState::kLoading ||
                                   it->second.status.state == SpeakerState::kUnloaded)) {
        continue;
      }
    }
    if (!first_scan && needs_settling) {
      auto [it, inserted] = settling_.try_emplace(name, fingerprint);
      if (inserted || it->second != fingerprint) {
        it->second = fingerprint;
        continue;  // load once it is unchanged at the next scan
      }
    }
    settling_.erase(name);
    RefreshSpeaker(name, source, fingerprint);
  }
  std::vector<std::shared_ptr<const IndexSnapshot>> removed;  // freed outside the lock
  {
    const std::set<std::string> present(names->begin(), names->end());
    for (auto it = settling_.begin(); it != settling_.end();) {
      it = present.count(it->first) == 0 ? settling_.erase(it) : std::next(it);
    }
    absl::MutexLock entries_lock(&mutex_);
    for (auto it = entries_.begin(); it != entries_.end();) {
      // A speaker being loaded has callers waiting: it goes at a later scan.
      if (present.count(it->first) == 0 && it->second.status.state != SpeakerState::kLoading) {
        budget_.Release(it->first);
        removed.push_back(std::move(it->second.status.snapshot));
        it = entries_.erase(it);
      } else {
        ++it;
      }
    }
    scanned_ = true;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const IndexSnapshot>> SpeakerRegistry::AnswerLocked(
    const Entry& entry) {
  const std::string& name = entry.status.name;
  switch (entry.status.state) {
    case SpeakerState::kLoaded:
      return entry.status.snapshot;
    case SpeakerState::kFailed:
      if (entry.failure.code() == absl::StatusCode::kResourceExhausted) return entry.failure;
      return absl::FailedPreconditionError(
          absl::StrCat("speaker '", name, "' failed to load: ", entry.status.error));
    default:
      return absl::UnavailableError(absl::StrCat("speaker '", name, "' is not loaded"));
  }
}

void SpeakerRegistry::Admit(absl::string_view speaker, bool retry_failed, bool warmup,
                            SnapshotCallback done) {
  if (absl::Status valid = ValidateSpeakerName(speaker); !valid.ok()) {
    done(valid);
    return;
  }
  absl::StatusOr<std::shared_ptr<const IndexSnapshot>> answer;
  {
    absl::MutexLock lock(&mutex_);
    auto it = entries_.find(speaker);
    if (it == entries_.end()) {
      answer = UnknownSpeakerLocked(speaker);
    } else {
      Entry& entry = it->second;
      const SpeakerState state = entry.status.state;
      const bool load = state == SpeakerState::kUnloaded ||
                        (retry_failed && state == SpeakerState::kFailed);
      if (load && stopping_) {
        answer = absl::UnavailableError(
            absl::StrCat("speaker '", speaker, "' is not loaded and the server is stopping"));
      } else if (load || state == SpeakerState::kLoading) {
        if (load) {
          entry.status.state = SpeakerState::kLoading;
          load_queue_.push_back(entry.status.name);
        }
        entry.warmup_requested = entry.warmup_requested || warmup;
        entry.waiters.push_back(std::move(done));
        return;
      } else {
        budget_.Touch(speaker);
        answer = AnswerLocked(entry);
      }
    }
  }
  done(std::move(answer));
}

void SpeakerRegistry::AcquireAsync(absl::string_view speaker, SnapshotCallback done) {
  Admit(speaker, /*retry_failed=*/false, /*warmup=*/false, std::move(done));
}

absl::StatusOr<std::shared_ptr<const IndexSnapshot>> SpeakerRegistry::Acquire(
    absl::string_view speaker) {
  absl::Notification answered;
  absl::StatusOr<std::shared_ptr<const IndexSnapshot>> result;
  AcquireAsync(speaker, [&](absl::StatusOr<std::shared_ptr<const IndexSnapshot>> answer) {
    result = std::move(answer);
    answered.Notify();
  });
  answered.WaitForNotification();
  return result;
}

void SpeakerRegistry::Load(absl::string_view speaker, bool warmup, SpeakerStatusCallback done) {
  Admit(speaker, /*retry_failed=*/true, warmup,
        [name = std::string(speaker), done = std::move(done)](
            absl::StatusOr<std::shared_ptr<const IndexSnapshot>> snapshot) mutable {
          if (!snapshot.ok()) {
            done(snapshot.status());
            return;
          }
          SpeakerStatus status;
          status.name = std::move(name);
          status.state = SpeakerState::kLoaded;
          status.snapshot = *std::move(snapshot);
          done(std::move(status));
        });
}

absl::StatusOr<SpeakerStatus> SpeakerRegistry::Unload(absl::string_view speaker) {
  if (absl::Status valid = ValidateSpeakerName(speaker); !valid.ok()) return valid;
  std::shared_ptr<const IndexSnapshot> dropped;  // freed outside the lock
  absl::MutexLock lock(&mutex_);
  auto it = entries_.find(speaker);
  if (it == entries_.end()) return UnknownSpeakerLocked(speaker);
  Entry& entry = it->second;
  if (entry.status.state == SpeakerState::kLoading) {
    return absl::FailedPreconditionError(absl::StrCat(
        "speaker '", speaker, "' is being loaded; unload it once the load has finished"));
  }
  budget_.Release(speaker);
  dropped = std::move(entry.status.snapshot);
  entry.status.state = SpeakerState::kUnloaded;
  entry.status.error.clear();
  entry.failure = absl::OkStatus();
  return entry.status;
}

absl::StatusOr<SpeakerStatus> SpeakerRegistry::Get(absl::string_view speaker) const {
  if (absl::Status valid = ValidateSpeakerName(speaker); !valid.ok()) return valid;
  absl::MutexLock lock(&mutex_);
  auto it = entries_.find(speaker);
  if (it == entries_.end()) return UnknownSpeakerLocked(speaker);
  return it->second.status;
}

std::vector<SpeakerStatus> SpeakerRegistry::List() const {
  std::vector<SpeakerStatus> all;
  absl::MutexLock lock(&mutex_);
  all.reserve(entries_.size());
  for (const auto& [name, entry] : entries_) all.push_back(entry.status);
  return all;
}

RegistryUsage SpeakerRegistry::Usage() const {
  RegistryUsage usage;
  absl::MutexLock lock(&mutex_);
  usage.budget_bytes = budget_.limit_bytes();
  for (const auto& [name, entry] : entries_) {
    ++usage.speakers[static_cast<int>(entry.status.state)];
    if (entry.status.snapshot != nullptr) {
      usage.memory_bytes += entry.status.snapshot->index->memory_bytes();
      usage.mapped_bytes += entry.status.snapshot->index->mapped_bytes();
    }
  }
  return usage;
}

}  // namespace timbre
