#include "server/serving/retriever.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/serving/blend.h"

namespace timbre {

absl::StatusOr<std::unique_ptr<Retriever>> Retriever::Create(Options options) {
  if (options.registry == nullptr || options.scheduler == nullptr) {
    return absl::InvalidArgumentError("Retriever needs a registry and a scheduler");
  }
  if (options.max_frames_per_call < 1 || options.max_k < 1) {
    return absl::InvalidArgumentError("Retriever limits must be >= 1");
  }
  return std::unique_ptr<Retriever>(new Retriever(options));
}

absl::StatusOr<std::shared_ptr<const IndexSnapshot>> Retriever::Check(
    const RetrievalCall& call, absl::StatusOr<std::shared_ptr<const IndexSnapshot>> snapshot,
    bool blend) const {
  if (!snapshot.ok()) return snapshot.status();
  const FaissIndex& index = *(*snapshot)->index;
  const std::string who = absl::StrCat("speaker '", call.speaker, "': ");
  if (call.frames.rows < 1) return absl::InvalidArgumentError(who + "the batch has no frames");
  if (call.frames.rows > options_.max_frames_per_call) {
    return absl::InvalidArgumentError(absl::StrCat(who, "the batch has ", call.frames.rows,
                                                   " frames; the server's limit is ",
                                                   options_.max_frames_per_call));
  }
  if (call.frames.dim != index.dim()) {
    return absl::InvalidArgumentError(absl::StrCat(who, "frames have dim ", call.frames.dim,
                                                   ", index has dim ", index.dim()));
  }
  if (call.params.k < 1 || call.params.k > options_.max_k) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, "k is ", call.params.k, "; it must be in [1, ", options_.max_k, "]"));
  }
  if (call.params.nprobe < 0 || (index.nlist() > 0 && call.params.nprobe > index.nlist())) {
    return absl::InvalidArgumentError(absl::StrCat(who, "nprobe is ", call.params.nprobe,
                                                   "; the index has ", index.nlist(), " lists"));
  }
  if (blend && !(call.index_rate >= 0.0f && call.index_rate <= 1.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat(who, "index_rate is ", call.index_rate, "; it must be in [0, 1]"));
  }
  return snapshot;
}

namespace {

// A checked call on its way through the scheduler.
struct PendingCall {
  RetrievalCall call;
  std::shared_ptr<const IndexSnapshot> snapshot;
  // The frames searched: the call's own, or L2-normalised copies for a cosine index.
  FrameMatrix normalized;
  std::vector<float> scores;  // [rows, k]
  std::vector<int64_t> ids;   // [rows, k]
};

// The results of a finished search of `pending`.
SearchResult MakeSearchResult(PendingCall& pending, const SearchTiming& timing) {
  SearchResult result;
  result.rows = pending.call.frames.rows;
  result.k = pending.call.params.k;
  result.scores = std::move(pending.scores);
  result.ids = std::move(pending.ids);
  result.snapshot = std::move(pending.snapshot);
  result.timing = timing;
  return result;
}

// Blends the frames of a finished search of `pending` in place.
BlendResult MakeBlendResult(PendingCall& pending, const SearchTiming& timing) {
  const absl::Time start = absl::Now();
  const FaissIndex& index = *pending.snapshot->index;
  FrameMatrix& frames = pending.call.frames;
  BlendFrames(frames.values.data(), frames.rows, frames.dim, pending.scores.data(),
              pending.ids.data(), pending.call.params.k, index.metric(), pending.call.index_rate,
              [&index](int64_t id) { return index.StoredVector(id); }, frames.values.data());
  BlendResult result;
  result.frames = std::move(frames);
  result.version = pending.snapshot->version;
  result.timing = timing;
  result.blend = absl::Now() - start;
  return result;
}

// Queues the search of a checked call; on the worker, `make_result` turns the finished search
// into the call's result. A call that failed its checks goes straight to `done`.
template <typename Result>
void Submit(absl::StatusOr<std::shared_ptr<const IndexSnapshot>> checked, RetrievalCall call,
            SearchScheduler& scheduler, absl::AnyInvocable<void(absl::StatusOr<Result>)> done,
            Result (*make_result)(PendingCall&, const SearchTiming&)) {
  if (!checked.ok()) {
    done(checked.status());
    return;
  }
  auto pending = std::make_shared<PendingCall>();
  pending->call = std::move(call);
  pending->snapshot = *std::move(checked);
  const size_t results = static_cast<size_t>(pending->call.frames.rows) * pending->call.params.k;
  pending->scores.resize(results);
  pending->ids.resize(results);
  SearchTask task;
  task.snapshot = pending->snapshot;
  task.params = pending->call.params;
  task.queries = pending->call.frames.values.data();
  if (pending->snapshot->metadata.normalize_queries()) {
    pending->normalized = pending->call.frames;
    NormalizeRows(&pending->normalized);
    task.queries = pending->normalized.values.data();
  }
  task.rows = pending->call.frames.rows;
  task.scores = pending->scores.data();
  task.ids = pending->ids.data();
  task.deadline = pending->call.deadline;
  task.done = [pending, make_result, done = std::move(done)](
                  absl::Status status, const SearchTiming& timing) mutable {
    if (!status.ok()) {
      done(std::move(status));
      return;
    }
    done(make_result(*pending, timing));
  };
  scheduler.Submit(std::move(task));
}

}  // namespace

void Retriever::AcquireAndCheck(RetrievalCall call, bool blend, CheckedCallback next) const {
  const std::string speaker = call.speaker;
  options_.registry->AcquireAsync(
      speaker, [this, blend, call = std::move(call), next = std::move(next)](
                   absl::StatusOr<std::shared_ptr<const IndexSnapshot>> snapshot) mutable {
        absl::StatusOr<std::shared_ptr<const IndexSnapshot>> checked =
            Check(call, std::move(snapshot), blend);
        next(std::move(checked), std::move(call));
      });
}

void Retriever::Search(RetrievalCall call,
                       absl::AnyInvocable<void(absl::StatusOr<SearchResult>)> done) const {
  AcquireAndCheck(std::move(call), /*blend=*/false,
                  [this, done = std::move(done)](auto checked, RetrievalCall call) mutable {
                    Submit(std::move(checked), std::move(call), *options_.scheduler,
                           std::move(done), &MakeSearchResult);
                  });
}

void Retriever::Blend(RetrievalCall call,
                      absl::AnyInvocable<void(absl::StatusOr<BlendResult>)> done) const {
  AcquireAndCheck(std::move(call), /*blend=*/true,
                  [this, done = std::move(done)](auto checked, RetrievalCall call) mutable {
                    Submit(std::move(checked), std::move(call), *options_.scheduler,
                           std::move(done), &MakeBlendResult);
                  });
}

}  // namespace timbre
