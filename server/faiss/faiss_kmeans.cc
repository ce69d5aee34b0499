#include "server/faiss/faiss_kmeans.h"

#include <string>
#include <utility>

#include <faiss/Clustering.h>
#include <faiss/IndexFlat.h>

#include "absl/strings/str_cat.h"
#include "server/faiss/faiss_call.h"

namespace timbre {

absl::StatusOr<FrameMatrix> KmeansCentroids(const FrameMatrix& rows, const KmeansOptions& options,
                                            BuildControl* control) {
  const std::string context = absl::StrCat("k-means of ", rows.rows, " rows of dim ", rows.dim,
                                           " to ", options.centroids, " centroids");
  if (rows.dim < 1 || rows.rows < 1 ||
      rows.values.size() != static_cast<size_t>(rows.rows) * rows.dim) {
    return absl::InvalidArgumentError(absl::StrCat(
        context, ": the rows are not a matrix (", rows.values.size(), " values)"));
  }
  if (options.centroids < 1 || options.centroids > rows.rows || options.iterations < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(context, ": needs 1 <= centroids <= rows and iterations >= 1 (is ",
                     options.iterations, ")"));
  }
  faiss::ClusteringParameters parameters;
  parameters.niter = 1;  // one iteration per train() call; the centroids carry over
  parameters.seed = options.seed;
  // Only silences faiss's warning on stderr about fewer than 39 rows per centroid (common here:
  // RVC compresses 200,000+ rows to 10,000); it does not change the result.
  parameters.min_points_per_centroid = 1;
  faiss::Clustering clustering(rows.dim, options.centroids, parameters);
  faiss::IndexFlatL2 assigner(rows.dim);
  for (int i = 1; i <= options.iterations; ++i) {
    if (IsCancelled(control)) return BuildCancelledError();
    // train() starts from clustering.centroids when it is set (from the previous iteration):
    // with frozen_centroids false they are initial values, updated by the iteration.
    absl::Status iterated =
        CallFaiss(context, absl::StatusCode::kInvalidArgument, control,
                  [&] { clustering.train(rows.rows, rows.values.data(), assigner); });
    if (!iterated.ok()) return iterated;
    ReportProgress(control, static_cast<double>(i) / options.iterations,
                   absl::StrCat("k-means iteration ", i, " of ", options.iterations));
  }
  FrameMatrix centroids;
  centroids.rows = options.centroids;
  centroids.dim = rows.dim;
  centroids.values = std::move(clustering.centroids);
  return centroids;
}

}  // namespace timbre
