#include "server/core/snapshot_loader.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace timbre {

absl::StatusOr<std::shared_ptr<const IndexSnapshot>> LoadSnapshot(
    absl::string_view speaker, const VersionSource& source, const SnapshotLoadOptions& options) {
  LoadOptions load;
  load.mmap = options.mmap;
  absl::StatusOr<std::unique_ptr<FaissIndex>> index = FaissIndex::Load(source.index_path, load);
  if (!index.ok()) return index.status();
  const timbre::v1::VersionMetadata& metadata = source.metadata;
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
  if (options.warmup) {
    absl::StatusOr<int64_t> frames = WarmUpIndex(**index, options.warmup_options);
    if (!frames.ok()) {
      return absl::Status(frames.status().code(),
                          absl::StrCat("version ", source.version, ": warm-up failed: ",
                                       frames.status().message()));
    }
    snapshot->warmup_frames = *frames;
  }
  snapshot->speaker = std::string(speaker);
  snapshot->version = source.version;
  snapshot->path = source.index_path;
  snapshot->loaded_at = absl::Now();
  snapshot->index = *std::move(index);
  return std::shared_ptr<const IndexSnapshot>(std::move(snapshot));
}

int64_t EstimateLoadBytes(const VersionSource& source, bool mmap) {
  if (mmap) return 0;
  std::error_code error;
  const auto size = std::filesystem::file_size(source.index_path, error);
  return error ? 0 : static_cast<int64_t>(size);
}

}  // namespace timbre
