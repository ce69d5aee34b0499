#include "server/serving/snapshot_loader.h"

#include <filesystem>
#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace timbre {
namespace {

// The version's sidecar of exact vectors (metadata.vectors_file, next to the index file), or ""
// when it has none.
std::string VectorsPath(const VersionSource& source) {
  if (source.metadata.vectors_file().empty()) return "";
  return absl::StrCat(source.index_path.substr(0, source.index_path.rfind('/') + 1),
                      source.metadata.vectors_file());
}

int64_t FileBytes(const std::string& path) {
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  return error ? 0 : static_cast<int64_t>(size);
}

}  // namespace

absl::StatusOr<std::shared_ptr<const IndexSnapshot>> LoadSnapshot(
    absl::string_view speaker, const VersionSource& source, const SnapshotLoadOptions& options) {
  const timbre::v1::VersionMetadata& metadata = source.metadata;
  IndexLoadOptions load;
  load.vectors_path = VectorsPath(source);
  load.mmap = options.mmap;
  load.prune_list_scan = options.exact_list_scan;
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
  snapshot->metadata = metadata;
  return std::shared_ptr<const IndexSnapshot>(std::move(snapshot));
}

int64_t EstimateLoadBytes(const VersionSource& source, bool mmap, bool exact_list_scan) {
  // A sidecar of exact vectors is read into the heap either way.
  const std::string vectors_path = VectorsPath(source);
  const int64_t sidecar = vectors_path.empty() ? 0 : FileBytes(vectors_path);
  // Read into the heap, an IVF-Flat index's lists also get timbre's 8-bit codes of every vector
  // (faiss_pruned_list_scan.h): a quarter of their bytes.
  const int64_t index = mmap ? 0 : FileBytes(source.index_path);
  return index + (exact_list_scan ? index / 4 : 0) + sidecar;
}

}  // namespace timbre
