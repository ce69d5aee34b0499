#include "server/faiss/faiss_kmeans.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/build/demo_speaker.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::HasSubstr;
using ::timbre::testing::FakeBuildControl;
using ::timbre::testing::IsOk;
using ::timbre::testing::StatusIs;

// `clusters` centres drawn uniformly from [-10, 10]^dim, and `per_cluster` points around each
// with normal noise of `spread` per coordinate; the centres are well separated for small spread.
struct Blobs {
  FrameMatrix centres;
  FrameMatrix points;
};

Blobs MakeBlobs(int clusters, int64_t per_cluster, int dim, float spread, uint32_t seed) {
  std::mt19937 random(seed);
  std::uniform_real_distribution<float> uniform(-10.0f, 10.0f);
  std::normal_distribution<float> noise(0.0f, spread);
  Blobs blobs;
  blobs.centres = {clusters, dim, std::vector<float>(static_cast<size_t>(clusters) * dim)};
  for (float& value : blobs.centres.values) value = uniform(random);
  blobs.points = {clusters * per_cluster, dim,
                  std::vector<float>(static_cast<size_t>(clusters * per_cluster) * dim)};
  for (int64_t i = 0; i < blobs.points.rows; ++i) {
    const float* centre = blobs.centres.row(i % clusters);
    for (int j = 0; j < dim; ++j) blobs.points.row(i)[j] = centre[j] + noise(random);
  }
  return blobs;
}

double Distance(const float* a, const float* b, int dim) {
  double sum = 0.0;
  for (int j = 0; j < dim; ++j) sum += (static_cast<double>(a[j]) - b[j]) * (a[j] - b[j]);
  return std::sqrt(sum);
}

// Distance from `point` to the nearest row of `rows`.
double NearestDistance(const float* point, const FrameMatrix& rows) {
  double nearest = std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < rows.rows; ++i) {
    nearest = std::min(nearest, Distance(point, rows.row(i), rows.dim));
  }
  return nearest;
}

KmeansOptions Options(int64_t centroids, int iterations = 10, int seed = 1234) {
  KmeansOptions options;
  options.centroids = centroids;
  options.iterations = iterations;
  options.seed = seed;
  return options;
}

TEST(KmeansCentroidsTest, ReturnsTheRequestedRowsOfTheSameDim) {
  const FrameMatrix rows = GenerateClusteredFrames(2000, 24, 16, 3);
  auto centroids = KmeansCentroids(rows, Options(50));
  ASSERT_THAT(centroids, IsOk());
  EXPECT_EQ(centroids->rows, 50);
  EXPECT_EQ(centroids->dim, 24);
  EXPECT_EQ(centroids->values.size(), 50u * 24);
  // As many centroids as rows: the rows themselves.
  auto all = KmeansCentroids(rows, Options(rows.rows, 2));
  ASSERT_THAT(all, IsOk());
  EXPECT_EQ(all->rows, rows.rows);
}

TEST(KmeansCentroidsTest, RecoversWellSeparatedCentres) {
  // 4 clusters of radius about 0.14, centres about 16 apart. Random initial centroids (rows)
  // leave a cluster without one with probability 4 * (3/4)^32 < 0.1%, so 32 centroids cover all
  // 4; k-means then keeps every centroid inside its cluster.
  const Blobs blobs = MakeBlobs(/*clusters=*/4, /*per_cluster=*/500, /*dim=*/8, /*spread=*/0.05f,
                                /*seed=*/21);
  auto centroids = KmeansCentroids(blobs.points, Options(32));
  ASSERT_THAT(centroids, IsOk());
  const double radius = 0.05 * std::sqrt(8.0);
  for (int64_t c = 0; c < blobs.centres.rows; ++c) {
    EXPECT_LT(NearestDistance(blobs.centres.row(c), *centroids), radius) << "centre " << c;
  }
  for (int64_t c = 0; c < centroids->rows; ++c) {
    EXPECT_LT(NearestDistance(centroids->row(c), blobs.centres), 2 * radius) << "centroid " << c;
  }
}

TEST(KmeansCentroidsTest, SameSeedGivesTheSameCentroids) {
  const FrameMatrix rows = GenerateClusteredFrames(3000, 16, 32, 4);
  auto first = KmeansCentroids(rows, Options(40, 5, 7));
  auto second = KmeansCentroids(rows, Options(40, 5, 7));
  auto other_seed = KmeansCentroids(rows, Options(40, 5, 8));
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(second, IsOk());
  ASSERT_THAT(other_seed, IsOk());
  EXPECT_EQ(first->values, second->values);
  EXPECT_NE(first->values, other_seed->values);
}

TEST(KmeansCentroidsTest, ReportsEachIterationUpToOne) {
  const FrameMatrix rows = GenerateClusteredFrames(2000, 16, 16, 5);
  FakeBuildControl control;
  ASSERT_THAT(KmeansCentroids(rows, Options(20, 4), &control), IsOk());
  const std::vector<FakeBuildControl::Report> reports = control.reports();
  ASSERT_EQ(reports.size(), 4u);
  for (size_t i = 0; i < reports.size(); ++i) {
    EXPECT_DOUBLE_EQ(reports[i].fraction, (i + 1) / 4.0);
    EXPECT_EQ(reports[i].message, "k-means iteration " + std::to_string(i + 1) + " of 4");
  }
}

TEST(KmeansCentroidsTest, CancellingAfterAnIterationStopsBeforeTheNext) {
  const FrameMatrix rows = GenerateClusteredFrames(5000, 32, 64, 6);
  FakeBuildControl control;
  control.CancelAtReport(1);  // after iteration 1 of 10
  EXPECT_THAT(KmeansCentroids(rows, Options(100, 10), &control),
              StatusIs(absl::StatusCode::kCancelled, ::testing::_));
  EXPECT_LT(control.reports().size(), 10u);
  EXPECT_EQ(control.reports().size(), 1u);
}

TEST(KmeansCentroidsTest, CancellingDuringAnIterationStopsInsideFaiss) {
  const FrameMatrix rows = GenerateClusteredFrames(20000, 32, 64, 7);
  FakeBuildControl control;
  // KmeansCentroids' own check before iteration 1 passes; faiss's first interrupt check, inside
  // the iteration's search, sees the cancel.
  control.CancelAfterPolls(1);
  EXPECT_THAT(KmeansCentroids(rows, Options(500, 10), &control),
              StatusIs(absl::StatusCode::kCancelled, ::testing::_));
  EXPECT_TRUE(control.reports().empty());
}

TEST(KmeansCentroidsTest, CentroidCountOutOfRangeIsInvalidArgument) {
  const FrameMatrix rows = GenerateClusteredFrames(100, 8, 4, 8);
  EXPECT_THAT(KmeansCentroids(rows, Options(0)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("0 centroids")));
  EXPECT_THAT(KmeansCentroids(rows, Options(101)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("100 rows of dim 8 to 101 centroids")));
  EXPECT_THAT(KmeansCentroids(rows, Options(10, 0)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("iterations")));
}

TEST(KmeansCentroidsTest, NonFiniteRowsAreInvalidArgument) {
  FrameMatrix rows = GenerateClusteredFrames(100, 8, 4, 9);
  rows.row(17)[3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THAT(KmeansCentroids(rows, Options(10)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NaN")));
}

}  // namespace
}  // namespace timbre
