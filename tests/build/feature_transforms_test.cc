#include "server/build/feature_transforms.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/build/build_recipe.h"
#include "server/build/demo_speaker.h"
#include "server/io/npy_file.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::Not;
using ::timbre::testing::IsOk;
using ::timbre::testing::ReadFile;
using ::timbre::testing::FakeBuildControl;
using ::timbre::testing::StatusIs;
using ::timbre::testing::TrainOrDie;

// ---------------------------------------------------------------------------------------------
// The shuffle, against permutations made by numpy 1.24.2 (Debian bookworm's python3-numpy) with
//   np.random.seed(seed); idx = np.arange(n); np.random.shuffle(idx); print(list(idx))

TEST(NumpyShufflePermutationTest, MatchesNumpyForSmallSizes) {
  EXPECT_THAT(NumpyShufflePermutation(10, 0), ElementsAre(2, 8, 4, 9, 1, 6, 7, 3, 0, 5));
  EXPECT_THAT(NumpyShufflePermutation(17, 42),
              ElementsAre(0, 1, 5, 15, 11, 14, 8, 13, 2, 9, 16, 4, 7, 10, 12, 3, 6));
  EXPECT_THAT(NumpyShufflePermutation(40, 7),
              ElementsAreArray({17, 37, 34, 18, 32, 1,  22, 2,  9,  36, 29, 21, 13, 27,
                                5,  15, 20, 24, 11, 0,  12, 30, 16, 39, 6,  7,  31, 26,
                                10, 33, 38, 8,  35, 14, 28, 23, 19, 3,  25, 4}));
  EXPECT_THAT(NumpyShufflePermutation(2, 1), ElementsAre(0, 1));
}

TEST(NumpyShufflePermutationTest, MatchesNumpyForLargerSizesAndSeeds) {
  // n = 5000, seed = 2**32 - 1: idx[:12] and idx[-12:].
  const std::vector<int64_t> large = NumpyShufflePermutation(5000, 4294967295u);
  EXPECT_THAT(std::vector<int64_t>(large.begin(), large.begin() + 12),
              ElementsAre(330, 4899, 4415, 3208, 3186, 2841, 2419, 2840, 288, 4171, 4316, 40));
  EXPECT_THAT(std::vector<int64_t>(large.end() - 12, large.end()),
              ElementsAre(3611, 2250, 3851, 4731, 2687, 4569, 506, 4310, 3143, 3084, 290, 2467));
  // n = 65537 (the first swap draws with a 17-bit mask), seed = 123: idx[:12].
  const std::vector<int64_t> odd = NumpyShufflePermutation(65537, 123);
  EXPECT_THAT(std::vector<int64_t>(odd.begin(), odd.begin() + 12),
              ElementsAre(39242, 16297, 53205, 54297, 10944, 24459, 16444, 2797, 57475, 62010,
                          10743, 36433));
}

// numpy's legacy randint(0, max + 1, dtype=np.uint64) draws with the same masked rejection as
// random_interval, so it checks both branches:
//   np.random.seed(seed); list(np.random.randint(0, max + 1, size=6, dtype=np.uint64))
TEST(NumpyRandomIntervalTest, MatchesNumpyBoundedDraws) {
  struct Case {
    uint64_t max;
    uint32_t seed;
    std::vector<uint64_t> expected;
  };
  const Case cases[] = {
      {6, 14, {3, 0, 4, 6, 1, 6}},
      {0xffffffffULL, 13, {3340206418, 2608511152, 1020231754, 3691240976, 3540249318, 3835331426}},
      {(1ULL << 33) + 5,
       11,
       {4588342975, 2854952027, 5128687543, 8273322316, 4746691143, 8144721500}},
      {(1ULL << 40) - 1,
       12,
       {324039055003, 579276786941, 1035458350722, 15992747971, 327922807216, 94635155505}},
  };
  for (const Case& c : cases) {
    std::mt19937 engine(c.seed);
    std::vector<uint64_t> drawn;
    for (size_t i = 0; i < c.expected.size(); ++i) {
      drawn.push_back(NumpyRandomInterval(c.max, &engine));
    }
    EXPECT_EQ(drawn, c.expected) << "max " << c.max << " seed " << c.seed;
  }
  std::mt19937 engine(1);
  EXPECT_EQ(NumpyRandomInterval(0, &engine), 0u);
}

TEST(NumpyShufflePermutationTest, SameSeedSameOrderOtherSeedOtherOrder) {
  EXPECT_EQ(NumpyShufflePermutation(1000, 99), NumpyShufflePermutation(1000, 99));
  EXPECT_NE(NumpyShufflePermutation(1000, 99), NumpyShufflePermutation(1000, 100));
}

TEST(NumpyShufflePermutationTest, IsAPermutation) {
  std::vector<int64_t> permutation = NumpyShufflePermutation(1000, 5);
  std::sort(permutation.begin(), permutation.end());
  std::vector<int64_t> identity(1000);
  std::iota(identity.begin(), identity.end(), int64_t{0});
  EXPECT_EQ(permutation, identity);
  EXPECT_THAT(NumpyShufflePermutation(1, 5), ElementsAre(0));
  EXPECT_TRUE(NumpyShufflePermutation(0, 5).empty());
}

// ---------------------------------------------------------------------------------------------
// PermuteRows.

FrameMatrix Matrix(int dim, std::vector<float> values) {
  FrameMatrix matrix;
  matrix.dim = dim;
  matrix.rows = static_cast<int64_t>(values.size()) / dim;
  matrix.values = std::move(values);
  return matrix;
}

TEST(PermuteRowsTest, GathersRowsInPermutationOrder) {
  const FrameMatrix rows = Matrix(2, {0, 1, 10, 11, 20, 21});
  const FrameMatrix permuted = PermuteRows(rows, {2, 0, 1});
  EXPECT_EQ(permuted.rows, 3);
  EXPECT_EQ(permuted.dim, 2);
  EXPECT_THAT(permuted.values, ElementsAre(20, 21, 0, 1, 10, 11));
  EXPECT_THAT(PermuteRows(rows, {1, 1}).values, ElementsAre(10, 11, 10, 11));
}

TEST(MoveRowsToEndTest, MovesTheLastRowsInFileOrderToTheEndKeepingBothOrders) {
  std::vector<int64_t> order = {5, 0, 3, 7, 1, 6, 2, 4};
  MoveRowsToEnd(6, &order);
  EXPECT_THAT(order, ElementsAre(5, 0, 3, 1, 2, 4, 7, 6));
  MoveRowsToEnd(8, &order);
  EXPECT_THAT(order, ElementsAre(5, 0, 3, 1, 2, 4, 7, 6)) << "nothing at or after row 8";
  MoveRowsToEnd(0, &order);
  EXPECT_THAT(order, ElementsAre(5, 0, 3, 1, 2, 4, 7, 6)) << "every row moves: order kept";
}

double Norm(const float* row, int dim) {
  double sum = 0.0;
  for (int c = 0; c < dim; ++c) sum += static_cast<double>(row[c]) * row[c];
  return std::sqrt(sum);
}

// ---------------------------------------------------------------------------------------------
// alpha-query expansion, against a brute-force reference written from the notes' formula:
//   sims = X @ X.T; for each row, the m largest sims (itself included);
//   x' = normalise(sum_j sims_j^alpha * X[j])

FrameMatrix NormalizedClusteredRows(int64_t rows, int dim, int clusters, uint32_t seed) {
  FrameMatrix frames = GenerateClusteredFrames(rows, dim, clusters, seed);
  NormalizeRows(&frames);
  return frames;
}

FrameMatrix ReferenceExpansion(const FrameMatrix& x, int m, double alpha) {
  FrameMatrix out = x;
  std::vector<std::pair<double, int64_t>> sims(x.rows);
  for (int64_t i = 0; i < x.rows; ++i) {
    for (int64_t j = 0; j < x.rows; ++j) {
      double dot = 0.0;
      for (int c = 0; c < x.dim; ++c) dot += static_cast<double>(x.row(i)[c]) * x.row(j)[c];
      sims[j] = {-dot, j};  // ascending order = most similar first
    }
    std::partial_sort(sims.begin(), sims.begin() + m, sims.end());
    std::vector<double> sum(x.dim, 0.0);
    for (int j = 0; j < m; ++j) {
      const double weight = std::pow(-sims[j].first, alpha);
      for (int c = 0; c < x.dim; ++c) sum[c] += weight * x.row(sims[j].second)[c];
    }
    double norm = 0.0;
    for (double v : sum) norm += v * v;
    for (int c = 0; c < x.dim; ++c) {
      out.row(i)[c] = static_cast<float>(sum[c] / std::max(std::sqrt(norm), 1e-9));
    }
  }
  return out;
}

void ExpectRowsNear(const FrameMatrix& actual, const FrameMatrix& expected, float tolerance) {
  ASSERT_EQ(actual.rows, expected.rows);
  ASSERT_EQ(actual.dim, expected.dim);
  for (size_t i = 0; i < actual.values.size(); ++i) {
    ASSERT_NEAR(actual.values[i], expected.values[i], tolerance)
        << "row " << i / actual.dim << " column " << i % actual.dim;
  }
}

// Expands `rows` and checks the result against ReferenceExpansion; returns it (empty on error).
FrameMatrix ExpectExpansionMatchesReference(const FrameMatrix& rows, float alpha, int neighbours) {
  absl::StatusOr<FrameMatrix> expanded = AlphaQueryExpand(rows, {alpha, neighbours}, nullptr);
  EXPECT_THAT(expanded, IsOk());
  if (!expanded.ok()) return FrameMatrix();
  ExpectRowsNear(*expanded, ReferenceExpansion(rows, neighbours, alpha), 1e-5f);
  return *std::move(expanded);
}

TEST(AlphaQueryExpandTest, MatchesBruteForceReferenceWithAlphaThree) {
  const FrameMatrix rows = NormalizedClusteredRows(300, 12, 6, 21);
  const FrameMatrix expanded = ExpectExpansionMatchesReference(rows, 3.0f, 5);
  ASSERT_EQ(expanded.values.size(), rows.values.size());
  float largest_change = 0.0f;
  for (size_t i = 0; i < rows.values.size(); ++i) {
    largest_change = std::max(largest_change, std::abs(expanded.values[i] - rows.values[i]));
  }
  EXPECT_GT(largest_change, 0.01f);  // the expansion moved the rows
  for (int64_t i = 0; i < expanded.rows; ++i) {
    EXPECT_NEAR(Norm(expanded.row(i), expanded.dim), 1.0, 1e-5);
  }
}

TEST(AlphaQueryExpandTest, MatchesBruteForceReferenceWithFractionalAlpha) {
  // 50 rows per tight cluster: a row's 7 nearest rows share its cluster, every similarity among
  // them is positive, and the notes' np.power is defined (the reference would give NaN otherwise).
  ExpectExpansionMatchesReference(NormalizedClusteredRows(200, 8, 4, 22), 0.5f, 7);
}

TEST(AlphaQueryExpandTest, NegativeSimilarityWeighsNothing) {
  // Row 1 is row 0 reversed: with fractional alpha the notes' formula would give NaN.
  const FrameMatrix rows = Matrix(2, {0.6f, 0.8f, -0.6f, -0.8f});
  AlphaQueryExpansion options;
  options.alpha = 1.5f;
  options.neighbours = 2;
  absl::StatusOr<FrameMatrix> expanded = AlphaQueryExpand(rows, options, nullptr);
  ASSERT_THAT(expanded, IsOk());
  EXPECT_THAT(expanded->values, ElementsAre(0.6f, 0.8f, -0.6f, -0.8f));
}

TEST(AlphaQueryExpandTest, ExpansionWithOneNeighbourKeepsRows) {
  const FrameMatrix rows = NormalizedClusteredRows(50, 6, 3, 23);
  absl::StatusOr<FrameMatrix> expanded = AlphaQueryExpand(rows, {3.0f, 1}, nullptr);
  ASSERT_THAT(expanded, IsOk());
  ExpectRowsNear(*expanded, rows, 1e-6f);
}

TEST(AlphaQueryExpandTest, NeighbourSearchIsExactUpToThresholdThenIvf) {
  const TrainOptions small = NeighbourSearchRecipe(kExactNeighbourSearchMaxRows);
  EXPECT_EQ(small.description, "Flat");
  EXPECT_EQ(small.metric, Metric::kInnerProduct);
  const TrainOptions large = NeighbourSearchRecipe(130000);
  EXPECT_EQ(large.description, "IVF360,Flat");
  EXPECT_EQ(large.metric, Metric::kInnerProduct);
  EXPECT_EQ(large.nprobe, kApproximateNeighbourSearchNprobe);
  EXPECT_GE(large.nprobe, 8);
}

TEST(AlphaQueryExpandTest, IvfNeighbourIndexProbingEveryListMatchesReference) {
  const FrameMatrix rows = NormalizedClusteredRows(400, 10, 8, 24);
  const std::unique_ptr<FaissIndex> index =
      TrainOrDie("IVF8,Flat", Metric::kInnerProduct, rows, /*nprobe=*/8);
  ASSERT_NE(index, nullptr);
  absl::StatusOr<FrameMatrix> expanded =
      AlphaQueryExpandWithIndex(rows, {3.0f, 4}, *index, nullptr);
  ASSERT_THAT(expanded, IsOk());
  ExpectRowsNear(*expanded, ReferenceExpansion(rows, 4, 3.0), 1e-5f);
}

TEST(AlphaQueryExpandTest, ApproximatePathAboveThresholdStaysCloseToExact) {
  const FrameMatrix rows = NormalizedClusteredRows(kExactNeighbourSearchMaxRows + 1, 8, 64, 25);
  const AlphaQueryExpansion options{3.0f, 4};
  absl::StatusOr<FrameMatrix> approximate = AlphaQueryExpand(rows, options, nullptr);
  ASSERT_THAT(approximate, IsOk());
  const std::unique_ptr<FaissIndex> exact_index = TrainOrDie("Flat", Metric::kInnerProduct, rows);
  ASSERT_NE(exact_index, nullptr);
  absl::StatusOr<FrameMatrix> exact =
      AlphaQueryExpandWithIndex(rows, options, *exact_index, nullptr);
  ASSERT_THAT(exact, IsOk());
  double cosine_sum = 0.0;
  for (int64_t i = 0; i < rows.rows; ++i) {
    double dot = 0.0;
    for (int c = 0; c < rows.dim; ++c) dot += approximate->row(i)[c] * exact->row(i)[c];
    cosine_sum += dot;
  }
  EXPECT_GT(cosine_sum / rows.rows, 0.999);
}

TEST(AlphaQueryExpandTest, RejectsBadOptions) {
  const FrameMatrix rows = NormalizedClusteredRows(20, 4, 2, 26);
  using absl::StatusCode;
  EXPECT_THAT(AlphaQueryExpand(rows, {3.0f, 0}, nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("neighbours is 0")));
  EXPECT_THAT(AlphaQueryExpand(rows, {3.0f, 21}, nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("[1, 20]")));
  EXPECT_THAT(AlphaQueryExpand(rows, {-1.0f, 3}, nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("alpha")));
  EXPECT_THAT(AlphaQueryExpand(rows, {std::numeric_limits<float>::quiet_NaN(), 3}, nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("alpha")));
  EXPECT_THAT(AlphaQueryExpand(rows, {std::numeric_limits<float>::infinity(), 3}, nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("alpha")));
  EXPECT_THAT(AlphaQueryExpand(FrameMatrix{}, {3.0f, 1}, nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("at least one row")));
  EXPECT_THAT(AlphaQueryExpand(rows, {0.0f, 3}, nullptr), IsOk());
}

TEST(AlphaQueryExpandTest, RejectsAMismatchedNeighbourIndex) {
  const FrameMatrix rows = NormalizedClusteredRows(20, 4, 2, 27);
  const std::unique_ptr<FaissIndex> l2_index = TrainOrDie("Flat", Metric::kL2, rows);
  ASSERT_NE(l2_index, nullptr);
  EXPECT_THAT(AlphaQueryExpandWithIndex(rows, {3.0f, 2}, *l2_index, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("(L2)")));
  FrameMatrix fewer = rows;
  fewer.rows -= 1;
  fewer.values.resize(fewer.rows * fewer.dim);
  const std::unique_ptr<FaissIndex> short_index = TrainOrDie("Flat", Metric::kInnerProduct, fewer);
  ASSERT_NE(short_index, nullptr);
  EXPECT_THAT(AlphaQueryExpandWithIndex(rows, {3.0f, 2}, *short_index, nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("19 vectors")));
}

TEST(AlphaQueryExpandTest, ReportsProgressToCompletion) {
  const FrameMatrix rows = NormalizedClusteredRows(9000, 4, 8, 28);
  FakeBuildControl control;
  ASSERT_THAT(AlphaQueryExpand(rows, {3.0f, 3}, &control), IsOk());
  const std::vector<double> fractions = control.fractions();
  ASSERT_GE(fractions.size(), 3u);  // indexing, then at least two batches
  EXPECT_TRUE(std::is_sorted(fractions.begin(), fractions.end()));
  EXPECT_DOUBLE_EQ(fractions.back(), 1.0);
}

TEST(AlphaQueryExpandTest, StopsWhenCancelled) {
  const FrameMatrix rows = NormalizedClusteredRows(9000, 4, 8, 29);
  FakeBuildControl cancelled_at_once;
  cancelled_at_once.Cancel();
  EXPECT_THAT(AlphaQueryExpand(rows, {3.0f, 3}, &cancelled_at_once),
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
  EXPECT_TRUE(cancelled_at_once.fractions().empty());
  FakeBuildControl cancelled_after_first_batch;
  cancelled_after_first_batch.CancelAtReport(2);
  EXPECT_THAT(AlphaQueryExpand(rows, {3.0f, 3}, &cancelled_after_first_batch),
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
  EXPECT_EQ(cancelled_after_first_batch.fractions().size(), 2u);
}

// ---------------------------------------------------------------------------------------------
// The shuffle against the RVC build fixture (tests/data/rvc_build, make_rvc_build_fixture.py):
// the .npy files concatenated in sorted order and permuted with the recorded seed are the rows
// RVC's train_index added, in the order it added them.

std::string FixturePath(const std::string& name) {
  const char* dir = getenv("TIMBRE_TEST_DATA");
  return absl::StrCat(dir != nullptr ? dir : "data", "/rvc_build/", name);
}

// The integers of `"key": value` or `"key": [values]` in the fixture's flat JSON.
std::vector<int64_t> JsonIntegers(const std::string& json, const std::string& key) {
  const size_t at = json.find(absl::StrCat("\"", key, "\":"));
  if (at == std::string::npos) return {};
  absl::string_view rest =
      absl::StripLeadingAsciiWhitespace(absl::string_view(json).substr(at + key.size() + 3));
  const bool list = absl::ConsumePrefix(&rest, "[");
  rest = rest.substr(0, rest.find(list ? ']' : ','));
  std::vector<int64_t> values;
  for (absl::string_view item : absl::StrSplit(rest, ',')) {
    int64_t value;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(item), &value)) values.push_back(value);
  }
  return values;
}

FrameMatrix ConcatenateFeatureFiles(const std::vector<std::string>& names) {
  FrameMatrix all;
  for (const std::string& name : names) {
    absl::StatusOr<NpyArray> array = ReadNpy(FixturePath(name));
    EXPECT_THAT(array, IsOk());
    if (!array.ok()) return all;
    EXPECT_EQ(array->descr, "<f4");
    all.dim = static_cast<int>(array->shape[1]);
    all.rows += array->shape[0];
    const size_t old_size = all.values.size();
    all.values.resize(old_size + array->data.size() / sizeof(float));
    std::memcpy(all.values.data() + old_size, array->data.data(), array->data.size());
  }
  return all;
}

TEST(RvcBuildFixtureTest, SeededShuffleReproducesRvcsRowOrder) {
  const std::string json = ReadFile(FixturePath("fixture.json"));
  ASSERT_FALSE(json.empty());
  const std::vector<int64_t> seed = JsonIntegers(json, "shuffle_seed");
  const std::vector<int64_t> head = JsonIntegers(json, "shuffled_row_indices_head");
  const std::vector<int64_t> n_ivf = JsonIntegers(json, "n_ivf");
  ASSERT_EQ(seed.size(), 1u);
  ASSERT_EQ(n_ivf.size(), 1u);
  ASSERT_GE(head.size(), 8u);

  // Sorted order is 10, 2, a, not the numeric 2, 10, a.
  const FrameMatrix concatenated = ConcatenateFeatureFiles({"10.npy", "2.npy", "a.npy"});
  ASSERT_EQ(concatenated.rows, JsonIntegers(json, "rows").at(0));
  const std::vector<int64_t> permutation =
      NumpyShufflePermutation(concatenated.rows, static_cast<uint32_t>(seed[0]));
  EXPECT_THAT(std::vector<int64_t>(permutation.begin(), permutation.begin() + head.size()),
              ElementsAreArray(head));
  const FrameMatrix shuffled = PermuteRows(concatenated, permutation);
  for (size_t i = 0; i < head.size(); ++i) {
    ASSERT_EQ(0, std::memcmp(shuffled.row(i), concatenated.row(head[i]),
                             sizeof(float) * concatenated.dim));
  }

  // RVC added the shuffled rows in order: id i of its index is shuffled row i.
  absl::StatusOr<std::unique_ptr<FaissIndex>> index = FaissIndex::Load(
      FixturePath(absl::StrCat("added_IVF", n_ivf[0], "_Flat_nprobe_1_fixture_v1.index")));
  ASSERT_THAT(index, IsOk());
  EXPECT_EQ((*index)->nlist(), n_ivf[0]);
  EXPECT_EQ(n_ivf[0], RvcListCount(concatenated.rows));
  ASSERT_EQ((*index)->size(), shuffled.rows);
  for (int64_t i = 0; i < shuffled.rows; ++i) {
    ASSERT_EQ(0,
              std::memcmp((*index)->StoredVector(i), shuffled.row(i), sizeof(float) * shuffled.dim))
        << "stored vector " << i;
  }
}

}  // namespace
}  // namespace timbre
