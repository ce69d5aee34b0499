#include "server/core/speaker_registry.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/core/speaker_name.h"

namespace timbre {
namespace {

absl::StatusOr<std::shared_ptr<const IndexSnapshot>> LoadSnapshot(absl::string_view speaker,
                                                                   const VersionSource& source) {
  const timbre::v1::VersionMetadata& metadata = source.metadata;
  IndexLoadOptions load;
  if (!metadata.vectors_file().empty()) {
    load.vectors_path = absl::StrCat(source.index_path.substr(0, source.index_path.rfind('/') + 1),
                                     metadata.vectors_file());
  }
  absl::StatusOr<std::unique_ptr<FaissIndex>> index = FaissIndex::Load(source.index_path, load);
  if (!index.ok()) return index.status();
  if (metadata.dim() != 0 && static_cast<int>(metadata.dim()) != (*index)->dim()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "version ", source.version, ": metadata says dim ", metadata.dim(), " but the index has ",
        (*index)->dim()));
  }
  if (metadata.num_vectors() != 0 &&
      static_cast<int64_t>(metadata.num_vectors()) != (*index)->size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "version ", source.version, ": metadata says ", metadata.num_vectors(),
        " vectors but the index has ", (*index)->size()));
  }
  auto snapshot = std::make_shared<IndexSnapshot>();
  snapshot->speaker = std::string(speaker);
  snapshot->version = source.version;
  snapshot->path = source.index_path;
  snapshot->loaded_at = absl::Now();
  snapshot->index = *std::move(index);
  snapshot->metadata = metadata;
  return std::shared_ptr<const IndexSnapshot>(std::move(snapshot));
}

}  // namespace

absl::StatusOr<std::unique_ptr<SpeakerRegistry>> SpeakerRegistry::Create(Options options) {
  if (options.repository == nullptr) {
    return absl::InvalidArgumentError("SpeakerRegistry needs a repository");
  }
  std::unique_ptr<SpeakerRegistry> registry(new SpeakerRegistry(options));
  {
    absl::MutexLock lock(&registry->refresh_mutex_);
    if (absl::Status scanned = registry->RefreshLocked(/*first_scan=*/true); !scanned.ok()) {
      return scanned;
    }
  }
  if (options.poll_interval > absl::ZeroDuration()) {
    registry->poller_ = std::thread([r = registry.get()] { r->PollLoop(); });
  }
  return registry;
}

SpeakerRegistry::~SpeakerRegistry() {
  stop_.Notify();
  if (poller_.joinable()) poller_.join();
}

void SpeakerRegistry::PollLoop() {
  while (!stop_.WaitForNotificationWithTimeout(options_.poll_interval)) {
    // Errors (an unreadable root) leave the loaded speakers serving; the next scan retries.
    Refresh().IgnoreError();
  }
}

absl::Status SpeakerRegistry::Refresh() {
  absl::MutexLock lock(&refresh_mutex_);
  return RefreshLocked(/*first_scan=*/false);
}

absl::Status SpeakerRegistry::RefreshLocked(bool first_scan) {
  absl::StatusOr<std::vector<std::string>> names = options_.repository->ListSpeakers();
  if (!names.ok()) return names.status();
  for (const std::string& name : *names) {
    absl::StatusOr<VersionSource> source = options_.repository->ResolveServingVersion(name);
    const std::string fingerprint =
        source.ok() ? source->fingerprint : absl::StrCat("error:", source.status().message());
    // Numbered versions are published atomically; RVC files may still be being copied in.
    const bool needs_settling = source.ok() && !source->numbered;
    {
      absl::MutexLock entries_lock(&mutex_);
      auto it = entries_.find(name);
      if (it != entries_.end() && it->second.loaded_fingerprint == fingerprint) continue;
    }
    if (!first_scan && needs_settling) {
      auto [it, inserted] = settling_.try_emplace(name, fingerprint);
      if (inserted || it->second != fingerprint) {
        it->second = fingerprint;
        continue;  // load once it is unchanged at the next scan
      }
    }
    settling_.erase(name);
    std::shared_ptr<const IndexSnapshot> loaded;
    std::string error;
    if (!source.ok()) {
      error = std::string(source.status().message());
    } else {
      absl::StatusOr<std::shared_ptr<const IndexSnapshot>> snapshot = LoadSnapshot(name, *source);
      if (snapshot.ok()) {
        loaded = *std::move(snapshot);
      } else {
        error = std::string(snapshot.status().message());
      }
    }
    std::shared_ptr<const IndexSnapshot> replaced;  // freed outside the lock
    {
      absl::MutexLock entries_lock(&mutex_);
      Entry& entry = entries_[name];
      entry.status.name = name;
      if (loaded != nullptr) {
        replaced = std::move(entry.status.snapshot);
        entry.status.snapshot = std::move(loaded);
      }
      entry.status.error = std::move(error);
      entry.loaded_fingerprint = fingerprint;
    }
  }
  std::vector<std::shared_ptr<const IndexSnapshot>> removed;  // freed outside the lock
  {
    const std::set<std::string> present(names->begin(), names->end());
    for (auto it = settling_.begin(); it != settling_.end();) {
      it = present.count(it->first) == 0 ? settling_.erase(it) : std::next(it);
    }
    absl::MutexLock entries_lock(&mutex_);
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (present.count(it->first) == 0) {
        removed.push_back(std::move(it->second.status.snapshot));
        it = entries_.erase(it);
      } else {
        ++it;
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const IndexSnapshot>> SpeakerRegistry::Acquire(
    absl::string_view speaker) const {
  absl::StatusOr<SpeakerStatus> status = Get(speaker);
  if (!status.ok()) return status.status();
  if (status->snapshot == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("speaker '", speaker, "' failed to load: ", status->error));
  }
  return std::move(status->snapshot);
}

absl::StatusOr<SpeakerStatus> SpeakerRegistry::Get(absl::string_view speaker) const {
  if (absl::Status valid = ValidateSpeakerName(speaker); !valid.ok()) return valid;
  absl::MutexLock lock(&mutex_);
  auto it = entries_.find(speaker);
  if (it == entries_.end()) {
    return absl::NotFoundError(absl::StrCat("speaker '", speaker, "' not found"));
  }
  return it->second.status;
}

std::vector<SpeakerStatus> SpeakerRegistry::List() const {
  std::vector<SpeakerStatus> all;
  absl::MutexLock lock(&mutex_);
  all.reserve(entries_.size());
  for (const auto& [name, entry] : entries_) all.push_back(entry.status);
  return all;
}

}  // namespace timbre
