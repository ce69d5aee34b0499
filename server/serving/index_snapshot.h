// IndexSnapshot: one loaded version of one speaker, immutable once made.
//
// The registry hands snapshots out as std::shared_ptr<const IndexSnapshot>. A call keeps its
// snapshot for its whole life, so a version swapped out while calls run is freed by the last of
// them, never under one.
//
// Thread-safe: immutable.
#ifndef TIMBRE_SERVER_SERVING_INDEX_SNAPSHOT_H_
#define TIMBRE_SERVER_SERVING_INDEX_SNAPSHOT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "server/faiss/faiss_index.h"
#include "timbre/v1/version_metadata.pb.h"

namespace timbre {

struct IndexSnapshot {
  std::string speaker;
  std::string version;  // see VersionSource::version
  std::string path;     // index file it was loaded from
  absl::Time loaded_at;
  std::unique_ptr<const FaissIndex> index;
  // The version's metadata (empty for an RVC file): recipe, evaluation, whether query frames are
  // normalised before searching (cosine indexes).
  timbre::v1::VersionMetadata metadata;
  // Frames searched to warm the index up before it served; 0 without warm-up.
  int64_t warmup_frames = 0;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_SERVING_INDEX_SNAPSHOT_H_
