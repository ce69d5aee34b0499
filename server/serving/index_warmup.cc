#include "server/serving/index_warmup.h"

#include <algorithm>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"

namespace timbre {

absl::StatusOr<int64_t> WarmUpIndex(const FaissIndex& index, const WarmupOptions& options) {
  if (options.batches < 1 || options.frames_per_batch < 1 || options.k < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "warm-up needs at least one batch, frame and neighbour; got batches ", options.batches,
        ", frames_per_batch ", options.frames_per_batch, ", k ", options.k));
  }
  const int dim = index.dim();
  const int64_t total = static_cast<int64_t>(options.batches) * options.frames_per_batch;
  std::mt19937 random(17);
  std::normal_distribution<float> noise(0.0f, 0.01f);
  std::vector<float> queries(static_cast<size_t>(options.frames_per_batch) * dim);
  std::vector<float> scores(static_cast<size_t>(options.frames_per_batch) * options.k);
  std::vector<int64_t> ids(scores.size());
  SearchParams params;
  params.k = options.k;
  for (int batch = 0; batch < options.batches; ++batch) {
    for (int row = 0; row < options.frames_per_batch; ++row) {
      const int64_t frame = static_cast<int64_t>(batch) * options.frames_per_batch + row;
      const StoredFloat* stored = index.StoredVector(frame * index.size() / total);
      float* query = queries.data() + static_cast<size_t>(row) * dim;
      for (int c = 0; c < dim; ++c) query[c] = stored[c] * (1.0f + noise(random));
    }
    absl::Status searched = index.Search(queries.data(), options.frames_per_batch, params,
                                         /*threads=*/1, scores.data(), ids.data());
    if (!searched.ok()) return searched;
  }
  return total;
}

}  // namespace timbre
