#include "server/faiss/faiss_coarse_kernels.h"

#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace timbre {
namespace coarse_kernels {
namespace {

// Queries whose products share each load of the codes (AVX-512 VNNI).
constexpr int kTileRows = 8;

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

// The AVX-512 mask of the first min(left, 16) lanes.
inline __mmask16 Lanes(int left) {
  return left >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << left) - 1);
}

// CodeQueryPortable with AVX-512, 16 dimensions at a time.
__attribute__((target("avx512f,avx512bw,avx512vl"))) void CodeQueryAvx512(const float* query,
                                                                          const float* mean,
                                                                          int dim, uint8_t* code,
                                                                          QueryCode* out) {
  __m512 largest = _mm512_setzero_ps(), centered_norm = _mm512_setzero_ps();
  for (int j = 0; j < dim; j += 16) {
    const __mmask16 m = Lanes(dim - j);
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
    const __mmask16 m = Lanes(dim - j);
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
// [kBlock][4] signed bytes): products[r * stride + c]. Both buffers hold rows rounded up to
// kRowTile: AMX computes whole tiles.
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
    const uint8_t* queries, bool one_row, const int8_t* codes, int groups, int first, bool pair,
    int32_t* products, int stride) {
  const size_t block_bytes = static_cast<size_t>(groups) * kBlock * 4;
  const int8_t* block0 = codes + first * block_bytes;
  // Without a pair, block0 is read twice and its second sums are not stored.
  const int8_t* block1 = pair ? block0 + block_bytes : block0;
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
    if (pair) _mm512_storeu_si512(out + kBlock, sums[2 * r + 1]);
  }
}

void ProductsVnni(const uint8_t* queries, int rows, const int8_t* codes, int groups, int blocks,
                  int32_t* products, int stride) {
  const size_t query_bytes = static_cast<size_t>(groups) * 4;
  for (int first = 0; first < blocks; first += 2) {
    const bool pair = first + 1 < blocks;
    int r = 0;
    for (; r + kTileRows <= rows; r += kTileRows) {
      ProductsVnniTile(queries + r * query_bytes, false, codes, groups, first, pair,
                       products + static_cast<size_t>(r) * stride, stride);
    }
    for (; r < rows; ++r) {
      ProductsVnniTile(queries + r * query_bytes, true, codes, groups, first, pair,
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
    // Without a pair, block0 is read twice and the second tile is not stored.
    const bool pair = first + 1 < blocks;
    const int8_t* block0 = codes + first * block_bytes;
    const int8_t* block1 = pair ? block0 + block_bytes : block0;
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
      if (pair) _tile_stored(1, out + kBlock, stride * sizeof(int32_t));
    }
  }
  _tile_release();
}

// Writes the `nlist` bounds of one query from its integer products (offset included), a bound
// that is not finite (norms that overflow float) as -infinity: it cannot exclude its centroid.
// Returns the smallest.
float BoundsPortable(int nlist, const QueryTerms& query, const CentroidTerms& centroids,
                     const int32_t* products, float* bounds) {
  float smallest = std::numeric_limits<float>::infinity();
  for (int c = 0; c < nlist; ++c) {
    const float dot = static_cast<float>(products[c] - kQueryOffset * centroids.code_sums[c]);
    bounds[c] = centroids.base[c] + query.constant -
                query.weight *
                    (query.scale * centroids.scale[c] * dot + query.norm * centroids.error_norm[c] +
                     query.error * centroids.code_norm[c]);
    if (!std::isfinite(bounds[c])) bounds[c] = -std::numeric_limits<float>::infinity();
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
  const __m512 lowest = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 smallest = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  for (int c = 0; c < nlist; c += 16) {
    const __mmask16 m = Lanes(nlist - c);
    const __m512i sums = _mm512_maskz_loadu_epi32(m, centroids.code_sums + c);
    const __m512 dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(
        _mm512_maskz_loadu_epi32(m, products + c), _mm512_mullo_epi32(offset, sums)));
    const __m512 estimate =
        _mm512_mul_ps(_mm512_mul_ps(scale, _mm512_maskz_loadu_ps(m, centroids.scale + c)), dot);
    const __m512 spread =
        _mm512_add_ps(_mm512_mul_ps(norm, _mm512_maskz_loadu_ps(m, centroids.error_norm + c)),
                      _mm512_mul_ps(error, _mm512_maskz_loadu_ps(m, centroids.code_norm + c)));
    __m512 bound =
        _mm512_sub_ps(_mm512_add_ps(_mm512_maskz_loadu_ps(m, centroids.base + c), constant),
                      _mm512_mul_ps(weight, _mm512_add_ps(estimate, spread)));
    const __mmask16 overflowed =  // inf - inf and NaN - NaN are NaN
        _mm512_cmp_ps_mask(_mm512_sub_ps(bound, bound), _mm512_setzero_ps(), _CMP_UNORD_Q);
    bound = _mm512_mask_mov_ps(bound, overflowed, lowest);
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
    const __mmask16 m = Lanes(nlist - c);
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

}  // namespace

float CodeScale(double largest) {
  const float scale = static_cast<float>(largest / kCodeMax);
  return scale >= std::numeric_limits<float>::min() ? scale : 1.0f;
}

float BoundSlack(int dim) { return static_cast<float>(4.0 * (dim + 16) * std::ldexp(1.0, -24)); }

VectorTerms CodeVector(const float* vector, const float* mean, double mean_norm, int dim, bool l2,
                       float slack, int8_t* block, int slot) {
  // The float just above `x` (>= 0): an upper end of a norm computed in double.
  auto round_up = [](double x) {
    return std::nextafter(static_cast<float>(x), std::numeric_limits<float>::infinity());
  };
  double largest = 0.0, centered_norm = 0.0, norm = 0.0, dot_mean = 0.0;
  for (int j = 0; j < dim; ++j) {
    const double centered = static_cast<double>(vector[j]) - mean[j];
    largest = std::max(largest, std::fabs(centered));
    centered_norm += centered * centered;
    norm += static_cast<double>(vector[j]) * vector[j];
    dot_mean += static_cast<double>(mean[j]) * centered;
  }
  const float scale = CodeScale(largest);
  double code_norm = 0.0, error_norm = 0.0;
  int32_t sum = 0;
  for (int j = 0; j < dim; ++j) {
    const double centered = static_cast<double>(vector[j]) - mean[j];
    const double code = std::clamp(std::nearbyint(centered / scale), static_cast<double>(-kCodeMax),
                                   static_cast<double>(kCodeMax));
    const double value = code * scale;
    code_norm += value * value;
    error_norm += (centered - value) * (centered - value);
    sum += static_cast<int32_t>(code);
    block[(static_cast<size_t>(j / 4) * kBlock + slot) * 4 + j % 4] = static_cast<int8_t>(code);
  }
  // L2: the bound of ||q - v||^2 = ||q'||^2 + ||v'||^2 - 2 <q', v'>; inner product: of
  // -<q, v> = -<q', v'> - <mean, v'> - <q, mean>. The query's terms are added per query.
  const double exact_part = l2 ? centered_norm : -dot_mean;
  return {sum, scale, round_up(std::sqrt(code_norm)), round_up(std::sqrt(error_norm)),
          static_cast<float>(exact_part - slack * (2.0 * centered_norm + norm + mean_norm))};
}

void CodedTerms::Reset(size_t slots) {
  code_sums_.assign(slots, 0);
  scale_.assign(slots, 0.0f);
  code_norm_.assign(slots, 0.0f);
  error_norm_.assign(slots, 0.0f);
  base_.assign(slots, 0.0f);
}

void CodedTerms::Set(size_t slot, const VectorTerms& terms) {
  code_sums_[slot] = terms.code_sum;
  scale_[slot] = terms.scale;
  code_norm_[slot] = terms.code_norm;
  error_norm_[slot] = terms.error_norm;
  base_[slot] = terms.base;
}

void CodedTerms::SetUnbounded(size_t slot) {
  base_[slot] = -std::numeric_limits<float>::infinity();
}

CentroidTerms CodedTerms::From(size_t slot) const {
  return {code_sums_.data() + slot, base_.data() + slot, scale_.data() + slot,
          error_norm_.data() + slot, code_norm_.data() + slot};
}

int64_t CodedTerms::memory_bytes() const {
  return static_cast<int64_t>(
      sizeof(float) *
      (code_sums_.size() + scale_.size() + code_norm_.size() + error_norm_.size() + base_.size()));
}

QueryTerms TermsOf(const QueryCode& code, float norm, float mean_product, bool l2, float slack) {
  // Float norms: their rounding is within the margin, and so is the rounding of the error's
  // terms, covered by slack * ||q'||.
  const float root = std::sqrt(code.centered_norm) * (1.0f + slack);
  const float exact_part = l2 ? code.centered_norm : -mean_product;
  return {l2 ? 2.0f : 1.0f, code.scale, exact_part - slack * (2.0f * code.centered_norm + norm),
          root, std::sqrt(code.error_norm) * (1.0f + slack) + slack * root};
}

const Kernels kPortableKernels = {CodeQueryPortable, ProductsPortable, BoundsPortable,
                                  BelowPortable};
const Kernels kVnniKernels = {CodeQueryAvx512, ProductsVnni, BoundsAvx512, BelowAvx512};
const Kernels kAmxKernels = {CodeQueryAvx512, ProductsAmx, BoundsAvx512, BelowAvx512};

bool CpuHasVnni() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}

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

}  // namespace coarse_kernels
}  // namespace timbre
