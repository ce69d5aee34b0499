// Vocabulary shared by the faiss adapter and the code above it, free of faiss types.
#ifndef TIMBRE_SERVER_FAISS_SEARCH_TYPES_H_
#define TIMBRE_SERVER_FAISS_SEARCH_TYPES_H_

#include <cstdint>

namespace timbre {

// A float of a stored vector. The inverted lists of a memory-mapped IVF index sit in the file at
// whatever offset faiss wrote them, so a stored vector need not be 4-byte aligned: read it
// through this type (alignment 1), which compiles to the same loads on x86-64.
typedef float StoredFloat __attribute__((aligned(1)));

// Distance an index ranks by.
enum class Metric {
  kL2,            // squared Euclidean distance, smaller is nearer (RVC)
  kInnerProduct,  // inner product, larger is nearer (cosine on normalised vectors)
};

// Per-call knobs of one nearest-neighbour search.
struct SearchParams {
  int k = 8;       // neighbours per query, >= 1
  int nprobe = 0;  // inverted lists probed; 0 = the value stored in the index
  int k_factor = 0;  // re-ranking factor for refined indexes (...,RFlat): k*k_factor candidates
                     // are re-scored exactly; 0 = the index's stored k_factor; ignored by
                     // indexes without a refine step
  // True: search without timbre's own steps, as the server did before them: every centroid
  // scored (one sgemm), faiss's scan of the lists. The same neighbours up to ties and float
  // rounding; the cost differs. For measuring that cost. Default false.
  bool unpruned = false;
};

// Marks a missing neighbour in search results (faiss's convention).
inline constexpr int64_t kNoNeighbour = -1;

}  // namespace timbre

#endif  // TIMBRE_SERVER_FAISS_SEARCH_TYPES_H_
