// BestK and SelectNearest: selection of the k best scores with faiss's heaps, shared by the faiss
// adapter's search files (faiss_index_search.cc, faiss_pruned_coarse_step.cc). Includes faiss
// headers: only the adapter's files include it.
#ifndef TIMBRE_SERVER_FAISS_FAISS_BEST_K_H_
#define TIMBRE_SERVER_FAISS_FAISS_BEST_K_H_

#include <cstdint>

#include <faiss/Index.h>
#include <faiss/utils/Heap.h>

#include "server/faiss/search_types.h"

namespace timbre {

using KeepSmallest = faiss::CMax<float, faiss::Index::idx_t>;  // the k smallest scores (L2)
using KeepLargest = faiss::CMin<float, faiss::Index::idx_t>;   // the k largest (inner product)

// The `k` best of the scores offered, kept in faiss's heap over [k] scores and ids. C is
// KeepSmallest or KeepLargest. A score enters only if strictly better than the worst kept, so of
// equal scores offered in increasing id order the smaller ids are kept, as in faiss's searches.
// Finish() sorts them best first, missing ids (-1) last.
template <class C>
class BestK {
 public:
  BestK(int64_t k, float* scores, int64_t* ids) : k_(k), scores_(scores), ids_(ids) {
    faiss::heap_heapify<C>(k_, scores_, ids_);
  }
  void Offer(float score, int64_t id) {
    if (C::cmp(scores_[0], score)) faiss::heap_replace_top<C>(k_, scores_, ids_, score, id);
  }
  // The worst score kept (the best possible before k scores were offered).
  float Worst() const { return scores_[0]; }
  void Finish() { faiss::heap_reorder<C>(k_, scores_, ids_); }

 private:
  int64_t k_;
  float* scores_;
  int64_t* ids_;
};

// Calls offer_all(best) with a BestK that keeps the nearest by `metric`, then sorts the result.
template <typename OfferAll>
void SelectNearest(Metric metric, int64_t k, float* scores, int64_t* ids, OfferAll&& offer_all) {
  if (metric == Metric::kL2) {
    BestK<KeepSmallest> best(k, scores, ids);
    offer_all(best);
    best.Finish();
  } else {
    BestK<KeepLargest> best(k, scores, ids);
    offer_all(best);
    best.Finish();
  }
}

}  // namespace timbre

#endif  // TIMBRE_SERVER_FAISS_FAISS_BEST_K_H_
