#include "server/build/feature_transforms.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace timbre {
namespace {

// Rows searched per FaissIndex::Search call of the expansion.
constexpr int64_t kExpansionBatch = 4096;

// numpy's mt19937 next_uint64: two 32-bit outputs, the first one high.
uint64_t NextUint64(std::mt19937* engine) {
  const uint64_t high = (*engine)();
  const uint64_t low = (*engine)();
  return high << 32 | low;
}

absl::Status ValidateExpansion(const FrameMatrix& rows, const AlphaQueryExpansion& options) {
  if (rows.rows < 1 || rows.dim < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "query expansion needs at least one row of dim >= 1, got ", rows.rows, " x ", rows.dim));
  }
  if (options.neighbours < 1 || options.neighbours > rows.rows) {
    return absl::InvalidArgumentError(absl::StrCat("query expansion neighbours is ",
                                                   options.neighbours, "; it must be in [1, ",
                                                   rows.rows, "], the number of rows"));
  }
  if (!std::isfinite(options.alpha) || options.alpha < 0.0f) {
    return absl::InvalidArgumentError(
        absl::StrCat("query expansion alpha is ", options.alpha, "; it must be finite and >= 0"));
  }
  return absl::OkStatus();
}

// Writes the expansion of row x (dim values) from its neighbours `ids` (k of them, kNoNeighbour
// skipped) to `out`. `sum` is scratch space of dim values.
void ExpandRow(const FrameMatrix& rows, const float* x, const int64_t* ids, int k, double alpha,
               double* sum, float* out) {
  std::fill(sum, sum + rows.dim, 0.0);
  for (int j = 0; j < k; ++j) {
    if (ids[j] == kNoNeighbour) continue;
    const float* neighbour = rows.row(ids[j]);
    double similarity = 0.0;
    for (int c = 0; c < rows.dim; ++c) similarity += static_cast<double>(x[c]) * neighbour[c];
    const double weight = std::pow(std::max(similarity, 0.0), alpha);
    for (int c = 0; c < rows.dim; ++c) sum[c] += weight * neighbour[c];
  }
  double norm = 0.0;
  for (int c = 0; c < rows.dim; ++c) norm += sum[c] * sum[c];
  const double scale = 1.0 / std::max(std::sqrt(norm), kRowNormFloor);
  for (int c = 0; c < rows.dim; ++c) out[c] = static_cast<float>(sum[c] * scale);
}

}  // namespace

uint64_t NumpyRandomInterval(uint64_t max, std::mt19937* engine) {
  if (max == 0) return 0;
  uint64_t mask = max;
  for (int shift = 1; shift <= 32; shift *= 2) mask |= mask >> shift;
  uint64_t value;
  if (max <= 0xffffffffULL) {
    while ((value = (static_cast<uint64_t>((*engine)()) & mask)) > max) {
    }
  } else {
    while ((value = (NextUint64(engine) & mask)) > max) {
    }
  }
  return value;
}

std::vector<int64_t> NumpyShufflePermutation(int64_t n, uint32_t seed) {
  std::vector<int64_t> permutation(std::max<int64_t>(n, 0));
  std::iota(permutation.begin(), permutation.end(), int64_t{0});
  std::mt19937 engine(seed);  // init_genrand(seed), as np.random.seed(int)
  for (int64_t i = n - 1; i >= 1; --i) {
    const auto j = static_cast<int64_t>(NumpyRandomInterval(static_cast<uint64_t>(i), &engine));
    std::swap(permutation[i], permutation[j]);
  }
  return permutation;
}

void MoveRowsToEnd(int64_t first_row, std::vector<int64_t>* permutation) {
  std::stable_partition(permutation->begin(), permutation->end(),
                        [first_row](int64_t row) { return row < first_row; });
}

FrameMatrix PermuteRows(const FrameMatrix& rows, const std::vector<int64_t>& permutation) {
  FrameMatrix out;
  out.rows = static_cast<int64_t>(permutation.size());
  out.dim = rows.dim;
  out.values.resize(static_cast<size_t>(out.rows) * rows.dim);
  for (int64_t i = 0; i < out.rows; ++i) {
    std::memcpy(out.row(i), rows.row(permutation[i]), sizeof(float) * rows.dim);
  }
  return out;
}

TrainOptions NeighbourSearchRecipe(int64_t rows) {
  TrainOptions options;
  options.metric = Metric::kInnerProduct;
  if (rows <= kExactNeighbourSearchMaxRows) {
    options.description = "Flat";
    return options;
  }
  options.description =
      absl::StrCat("IVF", static_cast<int64_t>(std::sqrt(static_cast<double>(rows))), ",Flat");
  options.nprobe = kApproximateNeighbourSearchNprobe;
  return options;
}

absl::StatusOr<FrameMatrix> AlphaQueryExpand(const FrameMatrix& normalized_rows,
                                             const AlphaQueryExpansion& options,
                                             BuildControl* control) {
  absl::Status valid = ValidateExpansion(normalized_rows, options);
  if (!valid.ok()) return valid;
  if (IsCancelled(control)) return BuildCancelledError();
  const TrainOptions recipe = NeighbourSearchRecipe(normalized_rows.rows);
  ReportProgress(control, 0.0,
                 absl::StrCat("query expansion: indexing ", normalized_rows.rows, " rows (",
                              recipe.description, ", inner product)"));
  absl::StatusOr<std::unique_ptr<FaissIndex>> index = FaissIndex::Train(
      recipe, normalized_rows.values.data(), normalized_rows.rows, normalized_rows.dim);
  if (!index.ok()) return index.status();
  return AlphaQueryExpandWithIndex(normalized_rows, options, **index, control);
}

absl::StatusOr<FrameMatrix> AlphaQueryExpandWithIndex(const FrameMatrix& normalized_rows,
                                                      const AlphaQueryExpansion& options,
                                                      const FaissIndex& neighbour_index,
                                                      BuildControl* control) {
  absl::Status valid = ValidateExpansion(normalized_rows, options);
  if (!valid.ok()) return valid;
  if (neighbour_index.metric() != Metric::kInnerProduct ||
      neighbour_index.dim() != normalized_rows.dim ||
      neighbour_index.size() != normalized_rows.rows) {
    return absl::InvalidArgumentError(
        absl::StrCat("query expansion needs an inner-product index of the ", normalized_rows.rows,
                     " rows of dim ", normalized_rows.dim, "; got ", neighbour_index.description(),
                     " of ", neighbour_index.size(), " vectors of dim ", neighbour_index.dim(),
                     neighbour_index.metric() == Metric::kL2 ? " (L2)" : " (inner product)"));
  }
  const int64_t n = normalized_rows.rows;
  const int k = options.neighbours;
  SearchParams params;
  params.k = k;
  FrameMatrix expanded;
  expanded.rows = n;
  expanded.dim = normalized_rows.dim;
  expanded.values.resize(normalized_rows.values.size());
  std::vector<float> scores(static_cast<size_t>(kExpansionBatch) * k);
  std::vector<int64_t> ids(scores.size());
  std::vector<double> sum(expanded.dim);
  for (int64_t start = 0; start < n; start += kExpansionBatch) {
    if (IsCancelled(control)) return BuildCancelledError();
    const int64_t count = std::min(kExpansionBatch, n - start);
    absl::Status searched = neighbour_index.Search(normalized_rows.row(start), count, params,
                                                   /*threads=*/1, scores.data(), ids.data());
    if (!searched.ok()) return searched;
    for (int64_t r = 0; r < count; ++r) {
      ExpandRow(normalized_rows, normalized_rows.row(start + r), ids.data() + r * k, k,
                options.alpha, sum.data(), expanded.row(start + r));
    }
    ReportProgress(control, static_cast<double>(start + count) / n,
                   absl::StrCat("query expansion: ", start + count, " of ", n, " rows"));
  }
  return expanded;
}

}  // namespace timbre
