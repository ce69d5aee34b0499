#include "server/serving/blend.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace timbre {
namespace {

// Fills weights[j] for one frame; returns false when no neighbour is present.
bool NeighbourWeights(const float* scores, const int64_t* ids, int k, Metric metric,
                      float* weights) {
  bool any_exact = false;
  bool any_present = false;
  for (int j = 0; j < k; ++j) {
    weights[j] = 0.0f;
    if (ids[j] < 0) continue;
    any_present = true;
    const float score = metric == Metric::kL2 ? scores[j] : 2.0f - 2.0f * scores[j];
    const float inverse = 1.0f / score;
    const float weight = inverse * inverse;
    if (score <= 0.0f || !std::isfinite(weight)) {
      any_exact = true;
    } else {
      weights[j] = weight;
    }
  }
  if (!any_present) return false;
  if (any_exact) {
    // Only the exact matches count, equally.
    for (int j = 0; j < k; ++j) {
      if (ids[j] < 0) continue;
      const float score = metric == Metric::kL2 ? scores[j] : 2.0f - 2.0f * scores[j];
      const float inverse = 1.0f / score;
      weights[j] = (score <= 0.0f || !std::isfinite(inverse * inverse)) ? 1.0f : 0.0f;
    }
  }
  float sum = 0.0f;
  for (int j = 0; j < k; ++j) sum += weights[j];
  for (int j = 0; j < k; ++j) weights[j] /= sum;
  return true;
}

}  // namespace

void BlendFrames(const float* frames, int64_t rows, int dim, const float* scores,
                 const int64_t* ids, int k, Metric metric, float index_rate,
                 absl::FunctionRef<const float*(int64_t)> stored, float* out) {
  std::vector<float> weights(k);
  std::vector<float> retrieved(dim);
  const float keep = 1.0f - index_rate;
  // The neighbours of a frame lie anywhere in the index: asking for the next frame's while this
  // one blends overlaps their reads from memory.
  auto prefetch = [&](int64_t row) {
    for (int j = 0; j < k; ++j) {
      const int64_t id = ids[row * k + j];
      if (id < 0) continue;
      const char* bytes = reinterpret_cast<const char*>(stored(id));
      for (int64_t at = 0; at < int64_t{dim} * 4; at += 64) __builtin_prefetch(bytes + at);
    }
  };
  if (rows > 0) prefetch(0);
  for (int64_t i = 0; i < rows; ++i) {
    if (i + 1 < rows) prefetch(i + 1);
    const float* frame = frames + i * dim;
    float* result = out + i * dim;
    if (!NeighbourWeights(scores + i * k, ids + i * k, k, metric, weights.data())) {
      if (result != frame) std::copy(frame, frame + dim, result);
      continue;
    }
    std::fill(retrieved.begin(), retrieved.end(), 0.0f);
    for (int j = 0; j < k; ++j) {
      const int64_t id = ids[i * k + j];
      if (id < 0) continue;
      const StoredFloat* vector = stored(id);
      const float w = weights[j];
      for (int c = 0; c < dim; ++c) retrieved[c] += vector[c] * w;
    }
    for (int c = 0; c < dim; ++c) result[c] = retrieved[c] * index_rate + keep * frame[c];
  }
}

void NormalizeRows(FrameMatrix* rows) {
  for (int64_t i = 0; i < rows->rows; ++i) {
    float* row = rows->row(i);
    double norm = 0.0;
    for (int c = 0; c < rows->dim; ++c) norm += static_cast<double>(row[c]) * row[c];
    const double scale = 1.0 / std::max(std::sqrt(norm), kRowNormFloor);
    for (int c = 0; c < rows->dim; ++c) row[c] = static_cast<float>(row[c] * scale);
  }
}

}  // namespace timbre
