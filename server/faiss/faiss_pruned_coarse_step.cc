#include "server/faiss/faiss_pruned_coarse_step.h"

#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include <faiss/utils/distances.h>

#include "absl/strings/str_cat.h"
#include "server/faiss/faiss_best_k.h"

namespace timbre {
namespace {

// Queries per block: bounds the [block, nlist] buffer of products (kept in the core's cache).
constexpr int kBlockRows = 64;
// Queries whose products share each load of the codes (AVX-512 VNNI).
constexpr int kTileRows = 8;
// Queries and groups of 4 dimensions per AMX tile; coded queries come in whole tiles.
constexpr int kRowTile = 16;
constexpr int kGroupTile = 16;
// The codes of a query are b + kQueryOffset (0..254), as the integer kernels want them unsigned.
constexpr int kQueryOffset = 128;
constexpr int kCodeMax = 127;
constexpr int kBlock = PrunedCoarseStep::kBlock;

// The scale of the codes of a vector whose largest magnitude is `largest`: largest / kCodeMax,
// or 1 when that is not a normal float (all codes 0 then, the vector itself the error), so that
// dividing by it stays finite.
float CodeScale(double largest) {
  const float scale = static_cast<float>(largest / kCodeMax);
  return scale >= std::numeric_limits<float>::min() ? scale : 1.0f;
}

// A query coded (see the header comment): t, ||q'||^2 and ||f||^2, in float.
struct QueryCode {
  float scale = 1.0f;
  float centered_norm = 0.0f;
  float error_norm = 0.0f;
};

// The per-centroid arrays of a bound (PrunedCoarseStep's members of the same names).
struct CentroidTerms {
  const int32_t* code_sums;
  const float* base;
  const float* scale;
  const float* error_norm;
  const float* code_norm;
};

// The per-query terms of a bound: bound[c] = base[c] + constant - weight * (scale * scale[c] *
// <b, a_c> + norm * error_norm[c] + error * code_norm[c]).
struct QueryTerms {
  float weight;
  float scale;
  float constant;
  float norm;
  float error;
};

// Codes q' = query - mean into `code` (dim bytes, b + kQueryOffset).
void CodeQueryPortable(const float* query, const float* mean, int dim, uint8_t* code,
                       QueryCode* out) {
  float largest = 0.0f, centered_norm = 0.0f;
  for (int j = 0; j < dim; ++j) {
    const float centered = query[j] - mean[j];
    largest = std::max(largest, std::fabs(centered));
    centered_norm += centered * centered;
  }
  const float t = CodeScale(largest);
  const float inverse = 1.0f / t;
  float error_norm = 0.0f;
  for (int j = 0; j < dim; ++j) {
    const float centered = query[j] - mean[j];
    const float b = std::clamp(std::nearbyint(centered * inverse), static_cast<float>(-kCodeMax),
                               static_cast<float>(kCodeMax));
    const float f = centered - t * b;
    error_norm += f * f;
    code[j] = static_cast<uint8_t>(static_cast<int>(b) + kQueryOffset);
  }
  *out = {t, centered_norm, error_norm};
}

// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*() values, which its uninitialised-use
// warnings take for bugs of the caller.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// CodeQueryPortable with AVX-512, 16 dimensions at a time.
__attribute__((target("avx512f,avx512bw,avx512vl"))) void CodeQueryAvx512(const float* query,
                                                                          const float* mean,
                                                                          int dim, uint8_t* code,
                                                                          QueryCode* out) {
  auto lanes = [dim](int j) -> __mmask16 {
    return dim - j >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (dim - j)) - 1);
  };
  __m512 largest = _mm512_setzero_ps(), centered_norm = _mm512_setzero_ps();
  for (int j = 0; j < dim; j += 16) {
    const __mmask16 m = lanes(j);
    const __m512 centered =
        _mm512_sub_ps(_mm512_maskz_loadu_ps(m, query + j), _mm512_maskz_loadu_ps(m, mean + j));
    largest = _mm512_max_ps(largest, _mm512_abs_ps(centered));
    centered_norm = _mm512_fmadd_ps(centered, centered, centered_norm);
  }
  const float most = _mm512_reduce_max_ps(largest);
  const float t = CodeScale(most);
  const __m512 scale = _mm512_set1_ps(t), inverse = _mm512_set1_ps(1.0f / t);
  const __m512 low = _mm512_set1_ps(-kCodeMax), high = _mm512_set1_ps(kCodeMax);
  const __m512i offset = _mm512_set1_epi32(kQueryOffset);
  __m512 error_norm = _mm512_setzero_ps();
  for (int j = 0; j < dim; j += 16) {
    const __mmask16 m = lanes(j);
    const __m512 centered =
        _mm512_sub_ps(_mm512_maskz_loadu_ps(m, query + j), _mm512_maskz_loadu_ps(m, mean + j));
    const __m512 b = _mm512_min_ps(
        high,
        _mm512_max_ps(low, _mm512_roundscale_ps(_mm512_mul_ps(centered, inverse),
                                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
    const __m512 f = _mm512_fnmadd_ps(scale, b, centered);
    error_norm = _mm512_fmadd_ps(f, f, error_norm);
    const __m512i bytes = _mm512_add_epi32(_mm512_cvtps_epi32(b), offset);
    _mm_mask_storeu_epi8(code + j, m, _mm512_cvtepi32_epi8(bytes));
  }
  *out = {t, _mm512_reduce_add_ps(centered_norm), _mm512_reduce_add_ps(error_norm)};
}

// The integer products of `rows` coded queries (`queries`, [rows][groups * 4] unsigned bytes,
// groups a multiple of kGroupTile) with the centroids of the `blocks` blocks ([blocks][groups]
// [kBlock][4] signed bytes; an even count): products[r * stride + c]. Both buffers hold rows
// rounded up to kRowTile: AMX computes whole tiles.
void ProductsPortable(const uint8_t* queries, int rows, const int8_t* codes, int groups, int blocks,
                      int32_t* products, int stride) {
  const size_t block_bytes = static_cast<size_t>(groups) * kBlock * 4;
  for (int r = 0; r < rows; ++r) {
    const uint8_t* query = queries + static_cast<size_t>(r) * groups * 4;
    for (int b = 0; b < blocks; ++b) {
      const int8_t* block = codes + b * block_bytes;
      int32_t sums[kBlock] = {};
      for (int g = 0; g < groups; ++g) {
        const int8_t* group = block + static_cast<size_t>(g) * kBlock * 4;
        for (int i = 0; i < kBlock; ++i) {
          for (int j = 0; j < 4; ++j) sums[i] += query[4 * g + j] * group[4 * i + j];
        }
      }
      std::copy(sums, sums + kBlock, products + static_cast<size_t>(r) * stride + b * kBlock);
    }
  }
}

// ProductsPortable for kTileRows queries (`one_row`: one query) with AVX-512 VNNI: one 32-bit
// lane per centroid, so that every instruction adds 4 dimensions of 16 centroids and no lane
// needs summing at the end. The sums are named one by one: kept in an array, GCC copies them
// between registers around every multiply-add.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void ProductsVnniTile(
    const uint8_t* queries, bool one_row, const int8_t* codes, int groups, int first,
    int32_t* products, int stride) {
  const size_t block_bytes = static_cast<size_t>(groups) * kBlock * 4;
  const int8_t* block0 = codes + first * block_bytes;
  const int8_t* block1 = block0 + block_bytes;
  const size_t query_bytes = static_cast<size_t>(groups) * 4;
  __m512i a0 = _mm512_setzero_si512(), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0,
          b3 = a0, a4 = a0, b4 = a0, a5 = a0, b5 = a0, a6 = a0, b6 = a0, a7 = a0, b7 = a0;
#define TIMBRE_ADD_ROW(r)                                                \
  {                                                                      \
    int32_t four;                                                        \
    std::memcpy(&four, queries + r * query_bytes + 4 * g, sizeof(four)); \
    const __m512i q = _mm512_set1_epi32(four);                           \
    a##r = _mm512_dpbusd_epi32(a##r, q, codes0);                         \
    b##r = _mm512_dpbusd_epi32(b##r, q, codes1);                         \
  }
  for (int g = 0; g < groups; ++g) {
    const __m512i codes0 = _mm512_loadu_si512(block0 + static_cast<size_t>(g) * kBlock * 4);
    const __m512i codes1 = _mm512_loadu_si512(block1 + static_cast<size_t>(g) * kBlock * 4);
    TIMBRE_ADD_ROW(0)
    if (one_row) continue;
    TIMBRE_ADD_ROW(1)
    TIMBRE_ADD_ROW(2)
    TIMBRE_ADD_ROW(3)
    TIMBRE_ADD_ROW(4)
    TIMBRE_ADD_ROW(5)
    TIMBRE_ADD_ROW(6)
    TIMBRE_ADD_ROW(7)
  }
#undef TIMBRE_ADD_ROW
  const __m512i sums[2 * kTileRows] = {a0, b0, a1, b1, a2, b2, a3, b3,
                                       a4, b4, a5, b5, a6, b6, a7, b7};
  for (int r = 0; r < (one_row ? 1 : kTileRows); ++r) {
    int32_t* out = products + static_cast<size_t>(r) * stride + first * kBlock;
    _mm512_storeu_si512(out, sums[2 * r]);
    _mm512_storeu_si512(out + kBlock, sums[2 * r + 1]);
  }
}

void ProductsVnni(const uint8_t* queries, int rows, const int8_t* codes, int groups, int blocks,
                  int32_t* products, int stride) {
  const size_t query_bytes = static_cast<size_t>(groups) * 4;
  for (int first = 0; first < blocks; first += 2) {
    int r = 0;
    for (; r + kTileRows <= rows; r += kTileRows) {
      ProductsVnniTile(queries + r * query_bytes, false, codes, groups, first,
                       products + static_cast<size_t>(r) * stride, stride);
    }
    for (; r < rows; ++r) {
      ProductsVnniTile(queries + r * query_bytes, true, codes, groups, first,
                       products + static_cast<size_t>(r) * stride, stride);
    }
  }
}

// ProductsPortable with AMX: per pair of blocks and kRowTile queries, two 16 x 16 tiles of sums,
// each multiply adding kGroupTile groups (64 dimensions) of 16 queries and 16 centroids. The
// codes' layout is the one AMX wants for its second operand.
__attribute__((target("amx-tile,amx-int8"))) void ProductsAmx(const uint8_t* queries, int rows,
                                                              const int8_t* codes, int groups,
                                                              int blocks, int32_t* products,
                                                              int stride) {
  struct alignas(64) TileConfig {
    uint8_t palette = 1;
    uint8_t start_row = 0;
    uint8_t reserved[14] = {};
    uint16_t bytes_per_row[16] = {};
    uint8_t rows[16] = {};
  } config;
  for (int t = 0; t < 5; ++t) {  // sums 0, 1; queries 2; codes 3, 4
    config.bytes_per_row[t] = 64;
    config.rows[t] = 16;
  }
  _tile_loadconfig(&config);
  const size_t query_bytes = static_cast<size_t>(groups) * 4;
  const size_t block_bytes = static_cast<size_t>(groups) * kBlock * 4;
  for (int first = 0; first < blocks; first += 2) {
    const int8_t* block0 = codes + first * block_bytes;
    const int8_t* block1 = block0 + block_bytes;
    for (int r = 0; r < rows; r += kRowTile) {
      _tile_zero(0);
      _tile_zero(1);
      for (int g = 0; g < groups; g += kGroupTile) {
        _tile_loadd(2, queries + r * query_bytes + 4 * g, query_bytes);
        _tile_loadd(3, block0 + static_cast<size_t>(g) * kBlock * 4, kBlock * 4);
        _tile_loadd(4, block1 + static_cast<size_t>(g) * kBlock * 4, kBlock * 4);
        _tile_dpbusd(0, 2, 3);
        _tile_dpbusd(1, 2, 4);
      }
      int32_t* out = products + static_cast<size_t>(r) * stride + first * kBlock;
      _tile_stored(0, out, stride * sizeof(int32_t));
      _tile_stored(1, out + kBlock, stride * sizeof(int32_t));
    }
  }
  _tile_release();
}

// Writes the `nlist` bounds of one query from its integer products (offset included) and
// returns the smallest.
float BoundsPortable(int nlist, const QueryTerms& query, const CentroidTerms& centroids,
                     const int32_t* products, float* bounds) {
  float smallest = std::numeric_limits<float>::infinity();
  for (int c = 0; c < nlist; ++c) {
    const float dot = static_cast<float>(products[c] - kQueryOffset * centroids.code_sums[c]);
    bounds[c] = centroids.base[c] + query.constant -
                query.weight *
                    (query.scale * centroids.scale[c] * dot + query.norm * centroids.error_norm[c] +
                     query.error * centroids.code_norm[c]);
    smallest = std::min(smallest, bounds[c]);
  }
  return smallest;
}

// BoundsPortable with AVX-512, 16 centroids at a time.
__attribute__((target("avx512f"))) float BoundsAvx512(int nlist, const QueryTerms& query,
                                                      const CentroidTerms& centroids,
                                                      const int32_t* products, float* bounds) {
  const __m512 weight = _mm512_set1_ps(query.weight), scale = _mm512_set1_ps(query.scale);
  const __m512 constant = _mm512_set1_ps(query.constant), norm = _mm512_set1_ps(query.norm);
  const __m512 error = _mm512_set1_ps(query.error);
  const __m512i offset = _mm512_set1_epi32(kQueryOffset);
  __m512 smallest = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  for (int c = 0; c < nlist; c += 16) {
    const __mmask16 m = nlist - c >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (nlist - c)) - 1);
    const __m512i sums = _mm512_maskz_loadu_epi32(m, centroids.code_sums + c);
    const __m512 dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(
        _mm512_maskz_loadu_epi32(m, products + c), _mm512_mullo_epi32(offset, sums)));
    const __m512 estimate =
        _mm512_mul_ps(_mm512_mul_ps(scale, _mm512_maskz_loadu_ps(m, centroids.scale + c)), dot);
    const __m512 spread =
        _mm512_add_ps(_mm512_mul_ps(norm, _mm512_maskz_loadu_ps(m, centroids.error_norm + c)),
                      _mm512_mul_ps(error, _mm512_maskz_loadu_ps(m, centroids.code_norm + c)));
    const __m512 bound =
        _mm512_sub_ps(_mm512_add_ps(_mm512_maskz_loadu_ps(m, centroids.base + c), constant),
                      _mm512_mul_ps(weight, _mm512_add_ps(estimate, spread)));
    _mm512_mask_storeu_ps(bounds + c, m, bound);
    smallest = _mm512_mask_min_ps(smallest, m, smallest, bound);
  }
  return _mm512_reduce_min_ps(smallest);
}

// Writes the centroids whose bound does not exceed `threshold` into `ids`, in order; returns
// their count.
int BelowPortable(const float* bounds, int nlist, float threshold, int* ids) {
  int count = 0;
  for (int c = 0; c < nlist; ++c) {
    if (bounds[c] <= threshold) ids[count++] = c;
  }
  return count;
}

// BelowPortable with AVX-512, 16 centroids at a time.
__attribute__((target("avx512f"))) int BelowAvx512(const float* bounds, int nlist, float threshold,
                                                   int* ids) {
  const __m512 limit = _mm512_set1_ps(threshold);
  const __m512i step = _mm512_set1_epi32(16);
  __m512i index = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  int count = 0;
  for (int c = 0; c < nlist; c += 16, index = _mm512_add_epi32(index, step)) {
    const __mmask16 m = nlist - c >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << (nlist - c)) - 1);
    const __mmask16 below =
        _mm512_mask_cmp_ps_mask(m, _mm512_maskz_loadu_ps(m, bounds + c), limit, _CMP_LE_OQ);
    if (below == 0) continue;
    _mm512_mask_compressstoreu_epi32(ids + count, below, index);
    count += __builtin_popcount(below);
  }
  return count;
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// The kernels a step runs: all portable, AVX-512 with VNNI, or the same with AMX's products.
struct Kernels {
  void (*code_query)(const float*, const float*, int, uint8_t*, QueryCode*);
  void (*products)(const uint8_t*, int, const int8_t*, int, int, int32_t*, int);
  float (*bounds)(int, const QueryTerms&, const CentroidTerms&, const int32_t*, float*);
  int (*below)(const float*, int, float, int*);
};
constexpr Kernels kPortableKernels = {CodeQueryPortable, ProductsPortable, BoundsPortable,
                                      BelowPortable};
constexpr Kernels kVnniKernels = {CodeQueryAvx512, ProductsVnni, BoundsAvx512, BelowAvx512};
constexpr Kernels kAmxKernels = {CodeQueryAvx512, ProductsAmx, BoundsAvx512, BelowAvx512};

bool CpuHasVnni() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}

// True if the CPU has AMX's int8 tiles and Linux lets this process use them (asked once).
bool CpuHasAmx() {
  static const bool usable = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
    const bool tiles = (edx >> 24) & 1, int8 = (edx >> 25) & 1;
    constexpr long kRequestPermission = 0x1023;  // ARCH_REQ_XCOMP_PERM
    constexpr long kTileData = 18;               // XFEATURE_XTILEDATA
    return tiles && int8 && syscall(SYS_arch_prctl, kRequestPermission, kTileData) == 0;
  }();
  return usable;
}

// The float just above `x` (>= 0): an upper end of a norm computed in double.
float RoundUp(double x) {
  return std::nextafter(static_cast<float>(x), std::numeric_limits<float>::infinity());
}

}  // namespace

// Per-thread buffers of AssignBlock, reused from call to call.
struct PrunedCoarseStep::Scratch {
  std::vector<uint8_t> coded;
  std::vector<int32_t> products;
  std::vector<float> bounds;
  std::vector<int> below;
  std::vector<std::pair<float, int>> candidates;
  std::vector<std::pair<int64_t, float>> scored;
  std::vector<float> best_keys;
  std::vector<int64_t> best_ids;
};

absl::StatusOr<std::unique_ptr<PrunedCoarseStep>> PrunedCoarseStep::Create(const float* centroids,
                                                                           int nlist, int dim,
                                                                           Metric metric,
                                                                           Kernel kernel) {
  if (nlist < 1 || dim < 1 || dim > kMaxDim) {
    return absl::InvalidArgumentError(absl::StrCat("a pruned coarse step needs nlist >= 1 (is ",
                                                   nlist, ") and a dim in 1..", kMaxDim, " (is ",
                                                   dim, ")"));
  }
  for (int64_t i = 0; i < static_cast<int64_t>(nlist) * dim; ++i) {
    if (!std::isfinite(centroids[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("coarse centroid ", i / dim, " has a value that is not finite"));
    }
  }
  std::unique_ptr<PrunedCoarseStep> step(new PrunedCoarseStep());
  step->centroids_ = centroids;
  step->nlist_ = nlist;
  step->dim_ = dim;
  step->groups_ = kGroupTile * ((dim + 4 * kGroupTile - 1) / (4 * kGroupTile));
  step->blocks_ = 2 * ((nlist + 2 * kBlock - 1) / (2 * kBlock));  // the kernels take two at once
  step->metric_ = metric;
  const bool vnni = kernel != Kernel::kPortable && CpuHasVnni();
  step->kernel_ = !vnni                                    ? Kernel::kPortable
                  : kernel == Kernel::kBest && CpuHasAmx() ? Kernel::kBest
                                                           : Kernel::kAvx512Vnni;
  step->slack_ = static_cast<float>(4.0 * (dim + 16) * std::ldexp(1.0, -24));

  std::vector<double> mean(dim, 0.0);
  for (int c = 0; c < nlist; ++c) {
    for (int j = 0; j < dim; ++j) mean[j] += centroids[static_cast<size_t>(c) * dim + j];
  }
  step->mean_.resize(dim);
  double mean_norm = 0.0;
  for (int j = 0; j < dim; ++j) {
    step->mean_[j] = static_cast<float>(mean[j] / nlist);
    mean_norm += static_cast<double>(step->mean_[j]) * step->mean_[j];
  }

  step->codes_.assign(static_cast<size_t>(step->blocks_) * step->groups_ * kBlock * 4, 0);
  step->code_sums_.resize(nlist);
  step->scale_.resize(nlist);
  step->code_norm_.resize(nlist);
  step->error_norm_.resize(nlist);
  step->base_.resize(nlist);
  std::vector<double> centered(dim);
  for (int c = 0; c < nlist; ++c) {
    const float* centroid = centroids + static_cast<size_t>(c) * dim;
    double largest = 0.0, centered_norm = 0.0, norm = 0.0, dot_mean = 0.0;
    for (int j = 0; j < dim; ++j) {
      centered[j] = static_cast<double>(centroid[j]) - step->mean_[j];
      largest = std::max(largest, std::fabs(centered[j]));
      centered_norm += centered[j] * centered[j];
      norm += static_cast<double>(centroid[j]) * centroid[j];
      dot_mean += static_cast<double>(step->mean_[j]) * centered[j];
    }
    const float scale = CodeScale(largest);
    double code_norm = 0.0, error_norm = 0.0;
    int32_t sum = 0;
    int8_t* block =
        step->codes_.data() + static_cast<size_t>(c / kBlock) * step->groups_ * kBlock * 4;
    for (int j = 0; j < dim; ++j) {
      const double code = std::clamp(std::nearbyint(centered[j] / scale),
                                     static_cast<double>(-kCodeMax), static_cast<double>(kCodeMax));
      const double value = code * scale;
      code_norm += value * value;
      error_norm += (centered[j] - value) * (centered[j] - value);
      sum += static_cast<int32_t>(code);
      block[(static_cast<size_t>(j / 4) * kBlock + c % kBlock) * 4 + j % 4] =
          static_cast<int8_t>(code);
    }
    step->code_sums_[c] = sum;
    step->scale_[c] = scale;
    step->code_norm_[c] = RoundUp(std::sqrt(code_norm));
    step->error_norm_[c] = RoundUp(std::sqrt(error_norm));
    // L2: the bound of ||q - c||^2 = ||q'||^2 + ||c'||^2 - 2 <q', c'>; inner product: of
    // -<q, c> = -<q', c'> - <mean, c'> - <q, mean>. The query's terms are added per query.
    const double exact_part = metric == Metric::kL2 ? centered_norm : -dot_mean;
    step->base_[c] =
        static_cast<float>(exact_part - step->slack_ * (2.0 * centered_norm + norm + mean_norm));
  }
  return step;
}

int64_t PrunedCoarseStep::memory_bytes() const {
  return static_cast<int64_t>(codes_.size()) +
         static_cast<int64_t>(sizeof(float)) *
             static_cast<int64_t>(mean_.size() + code_sums_.size() + scale_.size() +
                                  code_norm_.size() + error_norm_.size() + base_.size());
}

float PrunedCoarseStep::ExactKey(const float* query, int list) const {
  const float* centroid = centroids_ + static_cast<int64_t>(list) * dim_;
  return metric_ == Metric::kL2 ? faiss::fvec_L2sqr(query, centroid, dim_)
                                : -faiss::fvec_inner_product(query, centroid, dim_);
}

void PrunedCoarseStep::Assign(const float* queries, int64_t count, int nprobe, int threads,
                              float* scores, int64_t* lists) const {
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(threads, count));
#pragma omp parallel for num_threads(static_cast<int>(chunks)) if (chunks > 1)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t begin = count * chunk / chunks;
    const int64_t end = count * (chunk + 1) / chunks;
    for (int64_t start = begin; start < end; start += kBlockRows) {
      const int rows = static_cast<int>(std::min<int64_t>(kBlockRows, end - start));
      AssignBlock(queries + start * dim_, rows, nprobe, scores + start * nprobe,
                  lists + start * nprobe);
    }
  }
}

void PrunedCoarseStep::AssignBlock(const float* queries, int rows, int nprobe, float* scores,
                                   int64_t* lists) const {
  const Kernels& kernels = kernel_ == Kernel::kPortable     ? kPortableKernels
                           : kernel_ == Kernel::kAvx512Vnni ? kVnniKernels
                                                            : kAmxKernels;
  thread_local Scratch scratch;
  const size_t query_bytes = static_cast<size_t>(groups_) * 4;
  const int stride = blocks_ * kBlock;
  const int tiled_rows = kRowTile * ((rows + kRowTile - 1) / kRowTile);
  scratch.coded.assign(tiled_rows * query_bytes, kQueryOffset);
  scratch.products.resize(static_cast<size_t>(tiled_rows) * stride);
  scratch.bounds.resize(nlist_);
  scratch.below.resize(nlist_);
  std::vector<QueryTerms> terms(rows);
  for (int r = 0; r < rows; ++r) {
    const float* query = queries + static_cast<size_t>(r) * dim_;
    QueryCode code;
    kernels.code_query(query, mean_.data(), dim_, scratch.coded.data() + r * query_bytes, &code);
    // Float norms: their rounding is within the margin, and so is the rounding of the error's
    // terms, covered by slack * ||q'||.
    const float norm = faiss::fvec_norm_L2sqr(query, dim_);
    const float root = std::sqrt(code.centered_norm) * (1.0f + slack_);
    const float exact_part = metric_ == Metric::kL2
                                 ? code.centered_norm
                                 : -faiss::fvec_inner_product(query, mean_.data(), dim_);
    terms[r] = {metric_ == Metric::kL2 ? 2.0f : 1.0f, code.scale,
                exact_part - slack_ * (2.0f * code.centered_norm + norm), root,
                std::sqrt(code.error_norm) * (1.0f + slack_) + slack_ * root};
  }
  // products[r, c] = <b + offset, a_c>; the bounds take the offset out.
  kernels.products(scratch.coded.data(), rows, codes_.data(), groups_, blocks_,
                   scratch.products.data(), stride);
  const CentroidTerms centroids = {code_sums_.data(), base_.data(), scale_.data(),
                                   error_norm_.data(), code_norm_.data()};
  for (int r = 0; r < rows; ++r) {
    const float smallest = kernels.bounds(nlist_, terms[r], centroids,
                                          scratch.products.data() + static_cast<size_t>(r) * stride,
                                          scratch.bounds.data());
    SelectQuery(queries + static_cast<size_t>(r) * dim_, smallest, nprobe, kernels.below, scratch,
                scores + static_cast<size_t>(r) * nprobe, lists + static_cast<size_t>(r) * nprobe);
  }
}

void PrunedCoarseStep::SelectQuery(const float* query, float smallest, int nprobe, BelowFn below,
                                   Scratch& scratch, float* scores, int64_t* lists) const {
  constexpr float kDone = std::numeric_limits<float>::infinity();
  float* bounds = scratch.bounds.data();
  int* ids = scratch.below.data();
  // Exact keys (L2 distance, or minus the inner product) of the centroids scored.
  std::vector<std::pair<int64_t, float>>& scored = scratch.scored;
  scored.clear();
  // The nprobe best exact keys so far; its worst is the threshold a bound must not exceed.
  scratch.best_keys.resize(nprobe);
  scratch.best_ids.resize(nprobe);
  BestK<KeepSmallest> best(nprobe, scratch.best_keys.data(), scratch.best_ids.data());
  auto score = [&](int list) {
    const float key = ExactKey(query, list);
    scored.emplace_back(list, key);
    best.Offer(key, list);
    bounds[list] = kDone;
  };
  // Seeds: the nprobe smallest bounds (for nprobe 1, the first centroid with the smallest).
  if (nprobe == 1) {
    below(bounds, nlist_, smallest, ids);
    score(ids[0]);
  } else {
    std::vector<float> seed_bounds(nprobe);
    std::vector<int64_t> seed_ids(nprobe);
    BestK<KeepSmallest> seeds(nprobe, seed_bounds.data(), seed_ids.data());
    for (int c = 0; c < nlist_; ++c) seeds.Offer(bounds[c], c);
    for (int i = 0; i < nprobe; ++i) score(static_cast<int>(seed_ids[i]));
  }
  // Then every other centroid whose bound does not exceed the threshold, smallest bounds first.
  std::vector<std::pair<float, int>>& candidates = scratch.candidates;
  candidates.clear();
  const int count = below(bounds, nlist_, best.Worst(), ids);
  for (int i = 0; i < count; ++i) candidates.emplace_back(bounds[ids[i]], ids[i]);
  std::sort(candidates.begin(), candidates.end());
  for (const auto& [bound, list] : candidates) {
    if (bound > best.Worst()) break;
    score(list);
  }
  // The scored centroids offered in list order, as the full coarse step offers every centroid.
  std::sort(scored.begin(), scored.end());
  SelectNearest(metric_, nprobe, scores, lists, [&](auto& nearest) {
    for (const auto& [list, key] : scored) {
      nearest.Offer(metric_ == Metric::kL2 ? key : -key, list);
    }
  });
}

}  // namespace timbre
