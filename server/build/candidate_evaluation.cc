#include "server/build/candidate_evaluation.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/serving/blend.h"

namespace timbre {
namespace {

// Queries per search in the fidelity pass.
constexpr int64_t kFidelityBatch = 1024;

// Timed calls between progress reports.
constexpr int kLatencyReportEvery = 20;

// One index's answers and blends for a batch of queries.
struct BatchResult {
  std::vector<float> scores;  // [rows, k]
  std::vector<int64_t> ids;   // [rows, k]
  std::vector<float> blend;   // [rows, dim]

  BatchResult(int64_t rows, int k, int dim)
      : scores(static_cast<size_t>(rows) * k),
        ids(scores.size()),
        blend(static_cast<size_t>(rows) * dim) {}
};

// Searches `index` for `count` queries and blends them as RVC does.
absl::Status SearchAndBlend(const FaissIndex& index, const SearchParams& params,
                            const float* queries, int64_t count, float index_rate,
                            BatchResult* result) {
  absl::Status searched = index.Search(queries, count, params, /*threads=*/1, result->scores.data(),
                                       result->ids.data());
  if (!searched.ok()) return searched;
  BlendFrames(
      queries, count, index.dim(), result->scores.data(), result->ids.data(), params.k,
      index.metric(), index_rate, [&index](int64_t id) { return index.StoredVector(id); },
      result->blend.data());
  return absl::OkStatus();
}

// Ids of `found` (k of them, kNoNeighbour never matching) that are among the k of `truth`.
int SharedNeighbours(const int64_t* found, const int64_t* truth, int k) {
  int shared = 0;
  for (int i = 0; i < k; ++i) {
    if (found[i] != kNoNeighbour && std::find(truth, truth + k, found[i]) != truth + k) ++shared;
  }
  return shared;
}

// Cosine of two dim-vectors; 1 if both are zero, 0 if only one is.
double Cosine(const float* a, const float* b, int dim) {
  double dot = 0.0, a_norm = 0.0, b_norm = 0.0;
  for (int c = 0; c < dim; ++c) {
    dot += static_cast<double>(a[c]) * b[c];
    a_norm += static_cast<double>(a[c]) * a[c];
    b_norm += static_cast<double>(b[c]) * b[c];
  }
  if (a_norm == 0.0 || b_norm == 0.0) return a_norm == b_norm ? 1.0 : 0.0;
  return dot / std::sqrt(a_norm * b_norm);
}

template <typename... Parts>
absl::Status Invalid(const Parts&... parts) {
  return absl::InvalidArgumentError(absl::StrCat("candidate evaluation: ", parts...));
}

// The checks of the arguments TimeCandidate takes.
absl::Status ValidateTiming(const FaissIndex& candidate, const SearchParams& params,
                            const FrameMatrix& queries, const EvaluationOptions& options) {
  if (queries.rows < 1) return Invalid("no held-out queries");
  if (queries.dim != candidate.dim()) {
    return Invalid("queries have dim ", queries.dim, ", the index has dim ", candidate.dim());
  }
  if (options.k < 1 || options.k > candidate.size()) {
    return Invalid("k is ", options.k, "; it must be in [1, ", candidate.size(), "]");
  }
  if (params.k != options.k) {
    return Invalid("the candidate's k is ", params.k, " but recall is measured at k ", options.k);
  }
  if (params.nprobe < 0 || params.nprobe > candidate.nlist()) {
    return Invalid("nprobe is ", params.nprobe, "; the candidate (", candidate.description(),
                   ") allows [0, ", candidate.nlist(), "]");
  }
  if (!(options.index_rate >= 0.0f && options.index_rate <= 1.0f)) {
    return Invalid("index_rate is ", options.index_rate, "; it must be in [0, 1]");
  }
  if (options.call_frames < 1 || options.latency_calls < 1) {
    return Invalid("call_frames (", options.call_frames, ") and latency_calls (",
                   options.latency_calls, ") must be >= 1");
  }
  return absl::OkStatus();
}

// The checks of EvaluateCandidate's arguments.
absl::Status ValidateEvaluation(const FaissIndex& candidate, const SearchParams& params,
                                const FaissIndex& exact, const FrameMatrix& queries,
                                const EvaluationOptions& options) {
  if (exact.description() != "Flat") {
    return Invalid("the exact reference must be a Flat index, not ", exact.description());
  }
  if (candidate.dim() != exact.dim() || candidate.metric() != exact.metric() ||
      candidate.size() != exact.size()) {
    return Invalid("the candidate (", candidate.size(), " vectors of dim ", candidate.dim(),
                   ") and the exact reference (", exact.size(), " of dim ", exact.dim(),
                   ") must hold the same vectors with the same metric");
  }
  return ValidateTiming(candidate, params, queries, options);
}

// Fills recall_at_k and mean_blend_cosine. Reports progress in [0, 0.5].
absl::Status MeasureFidelity(const FaissIndex& candidate, const SearchParams& params,
                             const FaissIndex& exact, const FrameMatrix& queries,
                             const EvaluationOptions& options, BuildControl* control,
                             CandidateFigures* figures) {
  const int k = options.k;
  SearchParams exact_params;
  exact_params.k = k;
  const int64_t batch = std::min(kFidelityBatch, queries.rows);
  BatchResult approximate(batch, k, queries.dim), reference(batch, k, queries.dim);
  int64_t shared = 0;
  double cosine_sum = 0.0;
  for (int64_t start = 0; start < queries.rows; start += batch) {
    if (IsCancelled(control)) return BuildCancelledError();
    const int64_t count = std::min(batch, queries.rows - start);
    const float* rows = queries.row(start);
    absl::Status done =
        SearchAndBlend(candidate, params, rows, count, options.index_rate, &approximate);
    if (done.ok()) {
      done = SearchAndBlend(exact, exact_params, rows, count, options.index_rate, &reference);
    }
    if (!done.ok()) return done;
    for (int64_t r = 0; r < count; ++r) {
      shared += SharedNeighbours(approximate.ids.data() + r * k, reference.ids.data() + r * k, k);
      cosine_sum += Cosine(approximate.blend.data() + r * queries.dim,
                           reference.blend.data() + r * queries.dim, queries.dim);
    }
    ReportProgress(control, 0.5 * (start + count) / queries.rows,
                   absl::StrCat("evaluating ", candidate.description(), ": ", start + count, " of ",
                                queries.rows, " queries against exact search"));
  }
  figures->recall_at_k = static_cast<double>(shared) / (static_cast<double>(queries.rows) * k);
  figures->mean_blend_cosine = cosine_sum / queries.rows;
  return absl::OkStatus();
}

// The nearest-rank `percentile` (in (0, 100]) of ascending `sorted`.
double NearestRank(const std::vector<double>& sorted, double percentile) {
  const auto rank = static_cast<size_t>(std::ceil(percentile / 100.0 * sorted.size()));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

// Fills p50_call_us and p99_call_us. Reports progress in [0.5, 1].
absl::Status MeasureLatency(const FaissIndex& candidate, const SearchParams& params,
                            const FrameMatrix& queries, const EvaluationOptions& options,
                            BuildControl* control, CandidateFigures* figures) {
  const int frames = options.call_frames;
  const int dim = queries.dim;
  std::vector<float> call(static_cast<size_t>(frames) * dim);
  BatchResult result(frames, options.k, dim);
  std::vector<double> micros;
  micros.reserve(options.latency_calls);
  for (int c = 0; c < options.latency_calls; ++c) {
    if (IsCancelled(control)) return BuildCancelledError();
    for (int f = 0; f < frames; ++f) {
      const int64_t row = (static_cast<int64_t>(c) * frames + f) % queries.rows;
      std::memcpy(call.data() + static_cast<size_t>(f) * dim, queries.row(row),
                  sizeof(float) * dim);
    }
    const auto begin = std::chrono::steady_clock::now();
    absl::Status done =
        SearchAndBlend(candidate, params, call.data(), frames, options.index_rate, &result);
    const auto end = std::chrono::steady_clock::now();
    if (!done.ok()) return done;
    micros.push_back(std::chrono::duration<double, std::micro>(end - begin).count());
    if ((c + 1) % kLatencyReportEvery == 0 || c + 1 == options.latency_calls) {
      ReportProgress(control, 0.5 + 0.5 * (c + 1) / options.latency_calls,
                     absl::StrCat("timing ", candidate.description(), ": call ", c + 1, " of ",
                                  options.latency_calls));
    }
  }
  std::sort(micros.begin(), micros.end());
  figures->p50_call_us = NearestRank(micros, 50);
  figures->p99_call_us = NearestRank(micros, 99);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CandidateFigures> EvaluateCandidate(
    const FaissIndex& candidate, const SearchParams& params, const FaissIndex& exact,
    const FrameMatrix& held_out_queries, const EvaluationOptions& options, BuildControl* control) {
  absl::Status valid = ValidateEvaluation(candidate, params, exact, held_out_queries, options);
  if (!valid.ok()) return valid;
  CandidateFigures figures;
  absl::Status measured =
      MeasureFidelity(candidate, params, exact, held_out_queries, options, control, &figures);
  if (measured.ok()) {
    measured = MeasureLatency(candidate, params, held_out_queries, options, control, &figures);
  }
  if (!measured.ok()) return measured;
  return figures;
}

absl::StatusOr<CandidateFigures> TimeCandidate(const FaissIndex& candidate,
                                               const SearchParams& params,
                                               const FrameMatrix& held_out_queries,
                                               const EvaluationOptions& options,
                                               BuildControl* control) {
  absl::Status valid = ValidateTiming(candidate, params, held_out_queries, options);
  if (!valid.ok()) return valid;
  CandidateFigures figures;
  absl::Status timed =
      MeasureLatency(candidate, params, held_out_queries, options, control, &figures);
  if (!timed.ok()) return timed;
  return figures;
}

}  // namespace timbre
