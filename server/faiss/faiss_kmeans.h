// K-means compression of a large feature set, as RVC's train_index does before building an index
// from more than 200,000 rows (RVC uses sklearn's MiniBatchKMeans to 10,000 centroids; timbre
// uses faiss's k-means, squared L2).
//
// KmeansCentroids runs faiss::Clustering one iteration at a time, starting each iteration from
// the previous centroids, so that it reports progress per iteration and stops between iterations
// (and inside one, through faiss's interrupt checks) once its build is cancelled. The result is
// what one faiss run of `iterations` iterations gives.
//
// Sampling: faiss's default applies. When rows > 256 * centroids, each iteration runs on a
// random sample of 256 * centroids rows; the sample is drawn with the same seed every
// iteration, so it is one fixed sample, as in a single faiss run. RVC's case (10,000 centroids
// from a few hundred thousand rows) is below that limit and uses every row.
//
// Threads: faiss uses the calling thread's OpenMP thread count (omp_set_num_threads) and BLAS.
//
// Thread-safe: a free function without shared state; concurrent calls do not interfere.
#ifndef TIMBRE_SERVER_FAISS_FAISS_KMEANS_H_
#define TIMBRE_SERVER_FAISS_FAISS_KMEANS_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "server/faiss/build_control.h"
#include "server/io/frame_codec.h"

namespace timbre {

struct KmeansOptions {
  int64_t centroids = 10000;  // rows of the result, 1..rows (RVC: 10,000)
  int iterations = 10;        // k-means iterations, >= 1 (faiss's default for IVF training)
  int seed = 1234;            // seed of the initial centroids (random rows) and of the sample;
                              // the same seed on the same rows gives the same centroids
};

// The `options.centroids` k-means centroids of `rows` ([rows.rows, rows.dim]), as a
// [centroids, rows.dim] matrix. `control` (may be null) hears Progress(i / n,
// "k-means iteration i of n") after each iteration and is checked for cancellation before each.
// Errors: INVALID_ARGUMENT if centroids < 1 or > rows.rows, iterations < 1, or `rows` is not a
// well-formed matrix (dim < 1, values of the wrong size, NaN or infinite values); CANCELLED
// (BuildCancelledError()) when `control` was cancelled.
absl::StatusOr<FrameMatrix> KmeansCentroids(const FrameMatrix& rows, const KmeansOptions& options,
                                            BuildControl* control = nullptr);

}  // namespace timbre

#endif  // TIMBRE_SERVER_FAISS_FAISS_KMEANS_H_
