// WarmUpIndex: searches a freshly loaded index a few times before it serves, so that the first
// real calls do not pay for cold pages (memory-mapped inverted lists, newly allocated heap) and
// cold caches.
//
// The query frames are generated from the index itself: stored vectors spread evenly over its ids,
// each moved by a little deterministic noise, searched in batches the size of a real-time call
// with the index's own nprobe. Every search reads all coarse centroids (the bulk of a call's
// work); the inverted lists read are those the generated frames probe, spread over the index.
//
// Thread-safe: reads the index only (FaissIndex::Search is const).
#ifndef TIMBRE_SERVER_SERVING_INDEX_WARMUP_H_
#define TIMBRE_SERVER_SERVING_INDEX_WARMUP_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "server/faiss/faiss_index.h"

namespace timbre {

struct WarmupOptions {
  // Searches run. Default 8.
  int batches = 8;
  // Generated frames per search (RVC's real-time block is about 16). Default 16.
  int frames_per_batch = 16;
  // Neighbours per frame. Default 8 (RVC's k).
  int k = 8;
};

// Runs the warm-up searches on `index`; returns the number of frames searched.
// Errors: INVALID_ARGUMENT for options < 1; the search's error (INTERNAL) if faiss fails.
absl::StatusOr<int64_t> WarmUpIndex(const FaissIndex& index, const WarmupOptions& options = {});

}  // namespace timbre

#endif  // TIMBRE_SERVER_SERVING_INDEX_WARMUP_H_
