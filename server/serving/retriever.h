// Retriever: the core's entry point for Blend and Search calls.
//
// It checks a call against the speaker's serving snapshot (dim, k, nprobe, index_rate, batch
// size), queues its search on the SearchScheduler and, for Blend, mixes the neighbours back in
// with BlendFrames on the worker that searched. Every error names the speaker and what was wrong.
//
// Thread-safe. Blend and Search never block; `done` runs exactly once, either inline (for a call
// rejected before its search) or on a scheduler worker. A call for an unloaded speaker waits for
// its load off the caller's thread (SpeakerRegistry::AcquireAsync); `done` may then run on the
// registry's loader thread if the call is rejected.
#ifndef TIMBRE_SERVER_SERVING_RETRIEVER_H_
#define TIMBRE_SERVER_SERVING_RETRIEVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/io/frame_codec.h"
#include "server/serving/search_scheduler.h"
#include "server/serving/speaker_registry.h"

namespace timbre {

inline constexpr int kDefaultK = 8;
inline constexpr float kDefaultIndexRate = 0.75f;

// One Blend or Search call.
struct RetrievalCall {
  std::string speaker;
  FrameMatrix frames;              // [rows, dim], finite values
  SearchParams params;             // k >= 1; nprobe 0 = the index's
  float index_rate = kDefaultIndexRate;  // Blend only, in [0, 1]
  // When the caller stops waiting; a call still queued for search then is not searched.
  // Default: never.
  absl::Time deadline = absl::InfiniteFuture();
};

struct BlendResult {
  FrameMatrix frames;  // blended, same shape as the call's
  std::string version;
  SearchTiming timing;
  absl::Duration blend;  // time spent blending this call's frames
};

struct SearchResult {
  int64_t rows = 0;
  int k = 0;
  std::vector<float> scores;  // [rows, k]
  std::vector<int64_t> ids;   // [rows, k], kNoNeighbour where missing
  // The snapshot searched; StoredVector() of its index gives the neighbours' vectors.
  std::shared_ptr<const IndexSnapshot> snapshot;
  SearchTiming timing;
};

class Retriever {
 public:
  struct Options {
    SpeakerRegistry* registry = nullptr;        // required; must outlive the retriever
    SearchScheduler* scheduler = nullptr;       // required; must outlive the retriever
    // Most frames in one call. Default 4096 (an offline segment is up to ~3,550 frames).
    int64_t max_frames_per_call = 4096;
    // Largest k accepted. Default 1024.
    int max_k = 1024;
  };

  // Errors: INVALID_ARGUMENT for a missing collaborator or a limit < 1.
  static absl::StatusOr<std::unique_ptr<Retriever>> Create(Options options);

  // Errors passed to `done`: those of SpeakerRegistry::Acquire; INVALID_ARGUMENT for a frame dim
  // other than the index's, k outside [1, max_k], nprobe above the index's list count,
  // index_rate outside [0, 1], or more than max_frames_per_call frames; INTERNAL if faiss fails;
  // RESOURCE_EXHAUSTED (at once) when the scheduler's queue is full; DEADLINE_EXCEEDED when
  // call.deadline passed before a worker took the call (it is then not searched); both marked
  // as rejections (SearchScheduler::Submit).
  void Blend(RetrievalCall call, absl::AnyInvocable<void(absl::StatusOr<BlendResult>)> done) const;

  // As Blend, without the mix; index_rate is ignored.
  void Search(RetrievalCall call,
              absl::AnyInvocable<void(absl::StatusOr<SearchResult>)> done) const;

 private:
  explicit Retriever(Options options) : options_(options) {}
  // Checks `call` against the snapshot acquired for it.
  absl::StatusOr<std::shared_ptr<const IndexSnapshot>> Check(
      const RetrievalCall& call, absl::StatusOr<std::shared_ptr<const IndexSnapshot>> snapshot,
      bool blend) const;
  using CheckedCallback = absl::AnyInvocable<void(
      absl::StatusOr<std::shared_ptr<const IndexSnapshot>> checked, RetrievalCall call)>;
  // Acquires the call's snapshot (waiting for a load off the caller's thread), checks the call
  // against it and hands both to `next`.
  void AcquireAndCheck(RetrievalCall call, bool blend, CheckedCallback next) const;

  const Options options_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_SERVING_RETRIEVER_H_
