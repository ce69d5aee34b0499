#include "server/faiss/faiss_sq8_scan.h"

#include <immintrin.h>

#include <algorithm>
#include <vector>

#include <faiss/IndexScalarQuantizer.h>
#include <faiss/utils/distances.h>

#include "server/faiss/faiss_best_k.h"
#include "server/faiss/faiss_list_id.h"

namespace timbre {
namespace {

using faiss_idx = faiss::Index::idx_t;

// Codes whose products with the weights are computed together, before they are offered.
constexpr int kCodesPerBlock = 64;

// sums[v] = sum_i weights[i] * codes[v * dim + i] for the `count` codes of `dim` bytes at `codes`.
void DotCodesPortable(const float* weights, const uint8_t* codes, int dim, int count, float* sums) {
  for (int v = 0; v < count; ++v) {
    const uint8_t* code = codes + static_cast<int64_t>(v) * dim;
    float sum = 0.0f;
    for (int i = 0; i < dim; ++i) sum += weights[i] * static_cast<float>(code[i]);
    sums[v] = sum;
  }
}

// Sum of the 8 lanes of `x`.
__attribute__((target("avx2,fma"))) inline float SumLanes(__m256 x) {
  __m128 four = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  four = _mm_add_ps(four, _mm_movehl_ps(four, four));
  four = _mm_add_ss(four, _mm_movehdup_ps(four));
  return _mm_cvtss_f32(four);
}

// 8 of `code`'s bytes from `i` on, as floats.
__attribute__((target("avx2,fma"))) inline __m256 EightBytes(const uint8_t* code, int i) {
  return _mm256_cvtepi32_ps(
      _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(code + i))));
}

// DotCodesPortable with AVX2: four codes at a time, so that four independent chains of
// multiply-adds share each load of the weights.
__attribute__((target("avx2,fma"))) void DotCodesAvx2(const float* weights, const uint8_t* codes,
                                                      int dim, int count, float* sums) {
  const int whole = dim - dim % 8;
  int v = 0;
  for (; v + 4 <= count; v += 4) {
    const uint8_t* a = codes + static_cast<int64_t>(v) * dim;
    const uint8_t* b = a + dim;
    const uint8_t* c = b + dim;
    const uint8_t* d = c + dim;
    __m256 sa = _mm256_setzero_ps(), sb = _mm256_setzero_ps();
    __m256 sc = _mm256_setzero_ps(), sd = _mm256_setzero_ps();
    for (int i = 0; i < whole; i += 8) {
      const __m256 w = _mm256_loadu_ps(weights + i);
      sa = _mm256_fmadd_ps(EightBytes(a, i), w, sa);
      sb = _mm256_fmadd_ps(EightBytes(b, i), w, sb);
      sc = _mm256_fmadd_ps(EightBytes(c, i), w, sc);
      sd = _mm256_fmadd_ps(EightBytes(d, i), w, sd);
    }
    sums[v] = SumLanes(sa);
    sums[v + 1] = SumLanes(sb);
    sums[v + 2] = SumLanes(sc);
    sums[v + 3] = SumLanes(sd);
    for (int i = whole; i < dim; ++i) {
      sums[v] += weights[i] * a[i];
      sums[v + 1] += weights[i] * b[i];
      sums[v + 2] += weights[i] * c[i];
      sums[v + 3] += weights[i] * d[i];
    }
  }
  DotCodesPortable(weights, codes + static_cast<int64_t>(v) * dim, dim, count - v, sums + v);
}

using DotCodesFn = void (*)(const float*, const uint8_t*, int, int, float*);

// The kernel this CPU runs best.
DotCodesFn ChooseDotCodes() {
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return avx2 ? DotCodesAvx2 : DotCodesPortable;
}

}  // namespace

std::unique_ptr<Sq8Scan> Sq8Scan::Create(const faiss::IndexIVF& ivf) {
  auto* sq = dynamic_cast<const faiss::IndexIVFScalarQuantizer*>(&ivf);
  if (sq == nullptr || !ListsReadInPlace(ivf.invlists) ||
      (ivf.metric_type != faiss::METRIC_L2 && ivf.metric_type != faiss::METRIC_INNER_PRODUCT)) {
    return nullptr;
  }
  const auto type = sq->sq.qtype;
  const size_t dim = static_cast<size_t>(ivf.d);
  const size_t trained = sq->sq.trained.size();
  const bool uniform = type == faiss::ScalarQuantizer::QT_8bit_uniform;
  if ((type != faiss::ScalarQuantizer::QT_8bit && !uniform) || ivf.code_size != dim ||
      trained != (uniform ? 2 : 2 * dim)) {
    return nullptr;
  }
  std::unique_ptr<Sq8Scan> scan(new Sq8Scan(ivf));
  scan->dim_ = ivf.d;
  scan->metric_ = ivf.metric_type == faiss::METRIC_L2 ? Metric::kL2 : Metric::kInnerProduct;
  scan->by_residual_ = sq->by_residual;
  scan->dot_codes_ = ChooseDotCodes();
  scan->offset_.resize(dim);
  scan->step_.resize(dim);
  for (size_t i = 0; i < dim; ++i) {
    // faiss's Codec8bit and QuantizerTemplate: vmin + (code + 0.5) / 255 * vdiff.
    const float vmin = sq->sq.trained[uniform ? 0 : i];
    const float vdiff = sq->sq.trained[uniform ? 1 : dim + i];
    scan->step_[i] = vdiff / 255.0f;
    scan->offset_[i] = vmin + 0.5f * scan->step_[i];
  }
  scan->norm_start_.resize(ivf.nlist + 1, 0);
  for (size_t list = 0; list < ivf.nlist; ++list) {
    scan->norm_start_[list + 1] =
        scan->norm_start_[list] + static_cast<int64_t>(ivf.invlists->list_size(list));
  }
  scan->norms_.resize(scan->norm_start_.back());
  for (size_t list = 0; list < ivf.nlist; ++list) {
    const size_t n = ivf.invlists->list_size(list);
    const uint8_t* codes = ivf.invlists->get_codes(list);
    for (size_t j = 0; j < n; ++j) {
      float norm = 0.0f;
      for (size_t i = 0; i < dim; ++i) {
        const float value = scan->offset_[i] + codes[j * dim + i] * scan->step_[i];
        norm += value * value;
      }
      scan->norms_[scan->norm_start_[list] + j] = norm;
    }
  }
  return scan;
}

Sq8Scan::Sq8Scan(const faiss::IndexIVF& ivf) : ivf_(ivf) {}

float Sq8Scan::Weigh(const float* t, float* weights) const {
  for (int i = 0; i < dim_; ++i) weights[i] = t[i] * step_[i];
  return faiss::fvec_inner_product(t, offset_.data(), dim_);
}

void Sq8Scan::Search(const float* queries, int64_t count, int64_t k, int nprobe,
                     const int64_t* lists, const float* coarse_scores, float* scores,
                     int64_t* ids) const {
  const bool l2 = metric_ == Metric::kL2;
  std::vector<float> residual(dim_), weights(dim_);
  float dots[kCodesPerBlock];
  for (int64_t q = 0; q < count; ++q) {
    const float* query = queries + q * dim_;
    SelectNearest(metric_, k, scores + q * k, ids + q * k, [&](auto& best) {
      for (int p = 0; p < nprobe; ++p) {
        const int64_t list = lists[q * nprobe + p];
        if (list < 0) continue;
        // L2 on residual codes compares the query's offset from the list's centroid with the
        // code; inner product adds the centroid's score (the coarse score) instead.
        const float* t = query;
        if (l2 && by_residual_) {
          ivf_.quantizer->compute_residual(query, residual.data(), list);
          t = residual.data();
        }
        const float base = Weigh(t, weights.data());
        const float t_norm = l2 ? faiss::fvec_norm_L2sqr(t, dim_) : 0.0f;
        const float shift = !l2 && by_residual_ ? coarse_scores[q * nprobe + p] : 0.0f;
        const size_t n = ivf_.invlists->list_size(list);
        const uint8_t* codes = ivf_.invlists->get_codes(list);
        const faiss_idx* list_ids = ivf_.invlists->get_ids(list);
        const float* norms = norms_.data() + norm_start_[list];
        for (size_t begin = 0; begin < n; begin += kCodesPerBlock) {
          const int block = static_cast<int>(std::min<size_t>(kCodesPerBlock, n - begin));
          dot_codes_(weights.data(), codes + begin * dim_, dim_, block, dots);
          for (int j = 0; j < block; ++j) {
            const float dot = base + dots[j];
            // Expanded, the L2 distance can round below 0, which a blend would take for an
            // exact match.
            best.Offer(l2 ? std::max(0.0f, t_norm - 2.0f * dot + norms[begin + j]) : shift + dot,
                       ListId(list_ids, begin + j));
          }
        }
      }
    });
  }
}

int64_t Sq8Scan::memory_bytes() const {
  return static_cast<int64_t>((norms_.size() + offset_.size() + step_.size()) * sizeof(float) +
                              norm_start_.size() * sizeof(int64_t));
}

}  // namespace timbre
