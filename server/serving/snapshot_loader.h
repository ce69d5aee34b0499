// LoadSnapshot: reads one version of a speaker from disk into an IndexSnapshot, ready to serve.
//
// It checks the index against the version's metadata, optionally memory-maps IVF lists
// (FaissIndex IndexLoadOptions::mmap) and optionally warms the index up (WarmUpIndex) before handing
// it out, so the first calls on a new snapshot do not pay for cold pages.
//
// Thread-safe: free functions without shared state.
#ifndef TIMBRE_SERVER_SERVING_SNAPSHOT_LOADER_H_
#define TIMBRE_SERVER_SERVING_SNAPSHOT_LOADER_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/serving/index_snapshot.h"
#include "server/serving/index_warmup.h"
#include "server/serving/speaker_repository.h"

namespace timbre {

struct SnapshotLoadOptions {
  // Memory-map the inverted lists of IVF indexes. Default false.
  bool mmap = false;
  // Scan IVF-Flat lists with the exact list scan (IndexLoadOptions::prune_list_scan). Default
  // true.
  bool exact_list_scan = true;
  // Run warm-up searches through the index before returning it. Default false.
  bool warmup = false;
  // The warm-up searches, when `warmup` is set.
  WarmupOptions warmup_options;
};

// Loads `source`, the serving version of `speaker`, with the sidecar of exact vectors its
// metadata names (vectors_file, in the index file's directory) if any; the snapshot keeps a copy
// of the metadata.
// Errors: those of FaissIndex::Load (NOT_FOUND, INVALID_ARGUMENT, INTERNAL, for the index file or
// the sidecar); FAILED_PRECONDITION when the metadata's dim or vector count disagree with the
// index; the warm-up's error (INTERNAL).
absl::StatusOr<std::shared_ptr<const IndexSnapshot>> LoadSnapshot(
    absl::string_view speaker, const VersionSource& source, const SnapshotLoadOptions& options);

// The bytes a load of `source` is expected to take before it is loaded, for memory accounting:
// the index file's size when it is read into the heap (its in-memory form is about as large),
// and a quarter more with `exact_list_scan` (an IVF-Flat index's lists get 8-bit codes, a quarter
// of their bytes), and 0 when `mmap` is set (its heap part, mostly the coarse centroids, is known
// only once loaded);
// plus the size of its sidecar of exact vectors, if any, which is always read into the heap.
// A file that cannot be read counts 0 (the load itself will report why).
int64_t EstimateLoadBytes(const VersionSource& source, bool mmap, bool exact_list_scan);

}  // namespace timbre

#endif  // TIMBRE_SERVER_SERVING_SNAPSHOT_LOADER_H_
