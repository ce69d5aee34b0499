#include "server/faiss/faiss_pruned_list_scan.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <typeinfo>
#include <utility>

#include <faiss/IndexIVFFlat.h>
#include <faiss/utils/distances.h>

#include "server/faiss/faiss_best_k.h"
#include "server/faiss/faiss_coarse_kernels.h"
#include "server/faiss/faiss_list_id.h"

namespace timbre {
namespace {

using coarse_kernels::kBlock;
using coarse_kernels::Kernels;
using coarse_kernels::kGroupTile;

// Bytes of one block of codes.
size_t BlockBytes(int groups) { return static_cast<size_t>(groups) * kBlock * 4; }

bool AllFinite(const float* values, int count) {
  for (int i = 0; i < count; ++i) {
    if (!std::isfinite(values[i])) return false;
  }
  return true;
}

}  // namespace

// Per-thread buffers of Search, reused from call to call. The candidates of a query are the
// vectors of its lists, list after list: list p's from starts[p].
struct PrunedListScan::Scratch {
  std::vector<uint8_t> coded;
  std::vector<int32_t> products;
  std::vector<float> bounds;
  std::vector<int64_t> starts;
  std::vector<const float*> vectors;  // per list scanned: its vectors
  std::vector<int> below;
  std::vector<std::pair<float, int>> candidates;
  std::vector<std::pair<int, float>> scored;  // candidate, exact key
  std::vector<float> best_keys;
  std::vector<int64_t> best_ids;
};

std::unique_ptr<PrunedListScan> PrunedListScan::Create(const faiss::IndexIVF& ivf,
                                                       const float* centroids, Kernel kernel) {
  const int dim = ivf.d;
  if (typeid(ivf) != typeid(faiss::IndexIVFFlat) || !ListsReadInPlace(ivf.invlists) ||
      (ivf.metric_type != faiss::METRIC_L2 && ivf.metric_type != faiss::METRIC_INNER_PRODUCT) ||
      dim < 1 || dim > PrunedCoarseStep::kMaxDim || ivf.code_size != dim * sizeof(float) ||
      ivf.ntotal >= std::numeric_limits<int>::max()) {
    return nullptr;
  }
  std::unique_ptr<PrunedListScan> scan(new PrunedListScan(ivf));
  scan->centroids_ = centroids;
  scan->dim_ = dim;
  scan->groups_ = kGroupTile * ((dim + 4 * kGroupTile - 1) / (4 * kGroupTile));
  scan->metric_ = ivf.metric_type == faiss::METRIC_L2 ? Metric::kL2 : Metric::kInnerProduct;
  scan->kernel_ = kernel != Kernel::kPortable && coarse_kernels::CpuHasVnni() ? Kernel::kAvx512Vnni
                                                                              : Kernel::kPortable;
  scan->slack_ = coarse_kernels::BoundSlack(dim);
  const size_t nlist = ivf.nlist;
  scan->first_block_.assign(nlist + 1, 0);
  for (size_t list = 0; list < nlist; ++list) {
    const int64_t size = static_cast<int64_t>(ivf.invlists->list_size(list));
    scan->first_block_[list + 1] = scan->first_block_[list] + (size + kBlock - 1) / kBlock;
  }
  const size_t slots = static_cast<size_t>(scan->first_block_[nlist]) * kBlock;
  scan->codes_.assign(slots / kBlock * BlockBytes(scan->groups_), 0);
  scan->terms_.Reset(slots);
  std::vector<float> vector(dim);
  for (size_t list = 0; list < nlist; ++list) {
    const float* centroid = centroids + list * dim;
    const bool centroid_finite = AllFinite(centroid, dim);
    double centroid_norm = 0.0;
    for (int i = 0; i < dim; ++i) centroid_norm += static_cast<double>(centroid[i]) * centroid[i];
    const size_t size = ivf.invlists->list_size(list);
    const uint8_t* stored = ivf.invlists->get_codes(list);
    for (size_t j = 0; j < size; ++j) {
      // Mapped lists need not be aligned for floats: copied out.
      std::memcpy(vector.data(), stored + j * ivf.code_size, ivf.code_size);
      const size_t slot = scan->first_block_[list] * kBlock + j;
      if (!centroid_finite || !AllFinite(vector.data(), dim)) {
        scan->terms_.SetUnbounded(slot);
        continue;
      }
      scan->terms_.Set(
          slot, coarse_kernels::CodeVector(
                    vector.data(), centroid, centroid_norm, dim, scan->metric_ == Metric::kL2,
                    scan->slack_, scan->codes_.data() + slot / kBlock * BlockBytes(scan->groups_),
                    slot % kBlock));
    }
  }
  return scan;
}

int64_t PrunedListScan::memory_bytes() const {
  return static_cast<int64_t>(codes_.size() + first_block_.size() * sizeof(int64_t)) +
         terms_.memory_bytes();
}

const Kernels& PrunedListScan::KernelSet() const {
  return kernel_ == Kernel::kPortable ? coarse_kernels::kPortableKernels
                                      : coarse_kernels::kVnniKernels;
}

void PrunedListScan::Search(const float* queries, int64_t count, int64_t k, int nprobe,
                            const int64_t* lists, float* scores, int64_t* ids) const {
  thread_local Scratch scratch;
  for (int64_t q = 0; q < count; ++q) {
    const float* query = queries + q * dim_;
    Bound(query, nprobe, lists + q * nprobe, scratch);
    Select(query, k, nprobe, lists + q * nprobe, scratch, scores + q * k, ids + q * k);
  }
}

void PrunedListScan::Bound(const float* query, int nprobe, const int64_t* lists,
                           Scratch& scratch) const {
  const Kernels& kernels = KernelSet();
  const bool l2 = metric_ == Metric::kL2;
  scratch.starts.resize(nprobe + 1);
  scratch.vectors.resize(nprobe);
  int64_t total = 0;
  for (int p = 0; p < nprobe; ++p) {
    scratch.starts[p] = total;
    if (lists[p] >= 0) total += static_cast<int64_t>(ivf_.invlists->list_size(lists[p]));
  }
  scratch.starts[nprobe] = total;
  scratch.bounds.resize(total);
  // Bytes beyond dim multiply codes that are 0: whatever they hold adds nothing.
  scratch.coded.resize(static_cast<size_t>(groups_) * 4);
  const float norm = faiss::fvec_norm_L2sqr(query, dim_);
  for (int p = 0; p < nprobe; ++p) {
    const int64_t list = lists[p];
    const int size = static_cast<int>(scratch.starts[p + 1] - scratch.starts[p]);
    if (size == 0) continue;
    scratch.vectors[p] = reinterpret_cast<const float*>(ivf_.invlists->get_codes(list));
    const float* centroid = centroids_ + list * dim_;
    coarse_kernels::QueryCode code;
    kernels.code_query(query, centroid, dim_, scratch.coded.data(), &code);
    const coarse_kernels::QueryTerms terms = coarse_kernels::TermsOf(
        code, norm, l2 ? 0.0f : faiss::fvec_inner_product(query, centroid, dim_), l2, slack_);
    const int64_t first = first_block_[list];
    const int blocks = static_cast<int>(first_block_[list + 1] - first);
    if (scratch.products.size() < static_cast<size_t>(blocks) * kBlock) {
      scratch.products.resize(static_cast<size_t>(blocks) * kBlock);
    }
    // products[j] = <b + offset, a_j>; the bounds take the offset out.
    kernels.products(scratch.coded.data(), 1, codes_.data() + first * BlockBytes(groups_), groups_,
                     blocks, scratch.products.data(), 0);
    const size_t slot = first * kBlock;
    const coarse_kernels::CentroidTerms vectors = terms_.From(slot);
    kernels.bounds(size, terms, vectors, scratch.products.data(),
                   scratch.bounds.data() + scratch.starts[p]);
  }
}

void PrunedListScan::Select(const float* query, int64_t k, int nprobe, const int64_t* lists,
                            Scratch& scratch, float* scores, int64_t* ids) const {
  const Kernels& kernels = KernelSet();
  const bool l2 = metric_ == Metric::kL2;
  // A candidate scored is marked with a bound no threshold admits.
  constexpr float kDone = std::numeric_limits<float>::quiet_NaN();
  const int total = static_cast<int>(scratch.starts[nprobe]);
  float* bounds = scratch.bounds.data();
  const int64_t* starts = scratch.starts.data();
  std::vector<std::pair<int, float>>& scored = scratch.scored;
  scored.clear();
  // The k best exact keys (L2 distance, or minus the inner product) so far; its worst is the
  // threshold a bound must not exceed.
  scratch.best_keys.resize(k);
  scratch.best_ids.resize(k);
  BestK<KeepSmallest> best(k, scratch.best_keys.data(), scratch.best_ids.data());
  auto vector_of = [&](int candidate) {
    const int p =
        static_cast<int>(std::upper_bound(starts, starts + nprobe + 1, candidate) - starts) - 1;
    return scratch.vectors[p] + (candidate - starts[p]) * dim_;
  };
  // The vectors to score lie anywhere in the lists: asking for them all before scoring overlaps
  // their reads from memory.
  auto prefetch = [&](int candidate) {
    const char* bytes = reinterpret_cast<const char*>(vector_of(candidate));
    for (int64_t at = 0; at < int64_t{dim_} * 4; at += 64) __builtin_prefetch(bytes + at);
  };
  auto score = [&](int candidate) {
    const float* vector = vector_of(candidate);
    const float key = l2 ? faiss::fvec_L2sqr(query, vector, dim_)
                         : -faiss::fvec_inner_product(query, vector, dim_);
    scored.emplace_back(candidate, key);
    best.Offer(key, candidate);
    bounds[candidate] = kDone;
  };
  if (total <= k) {
    for (int i = 0; i < total; ++i) score(i);
  } else {
    // Seeds: the k smallest bounds.
    scratch.candidates.clear();
    for (int i = 0; i < total; ++i) scratch.candidates.emplace_back(bounds[i], i);
    std::nth_element(scratch.candidates.begin(), scratch.candidates.begin() + (k - 1),
                     scratch.candidates.end());
    for (int64_t i = 0; i < k; ++i) prefetch(scratch.candidates[i].second);
    for (int64_t i = 0; i < k; ++i) score(scratch.candidates[i].second);
    // Then every other vector whose bound does not exceed the threshold, smallest bounds first.
    scratch.below.resize(total);
    const int count = kernels.below(bounds, total, best.Worst(), scratch.below.data());
    scratch.candidates.clear();
    for (int i = 0; i < count; ++i) {
      scratch.candidates.emplace_back(bounds[scratch.below[i]], scratch.below[i]);
    }
    std::sort(scratch.candidates.begin(), scratch.candidates.end());
    for (const auto& [bound, candidate] : scratch.candidates) prefetch(candidate);
    for (const auto& [bound, candidate] : scratch.candidates) {
      if (bound > best.Worst()) break;
      score(candidate);
    }
  }
  // The scored vectors offered list by list and in list order, as faiss's scan offers every one.
  std::sort(scored.begin(), scored.end());
  SelectNearest(metric_, k, scores, ids, [&](auto& nearest) {
    int p = 0;
    for (const auto& [candidate, key] : scored) {
      while (starts[p + 1] <= candidate) ++p;
      nearest.Offer(l2 ? key : -key,
                    ListId(ivf_.invlists->get_ids(lists[p]), candidate - starts[p]));
    }
  });
}

}  // namespace timbre
