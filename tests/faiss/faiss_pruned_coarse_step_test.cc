// The pruned exact coarse step (faiss_pruned_coarse_step.h), seen through FaissIndex and on its
// own with each integer kernel: the same lists as scoring every centroid, on RVC's files and on
// random data with ties, for L2 and inner product, any nprobe and tiny nlist, and centroids whose
// 8-bit codes are poor.
#include "server/faiss/faiss_pruned_coarse_step.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/index_io.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/build/demo_speaker.h"
#include "server/faiss/faiss_index.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::HasSubstr;
using ::timbre::testing::QueriesNear;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::SmallIntegers;
using ::timbre::testing::StatusIs;
using ::timbre::testing::TrainOrDie;

std::unique_ptr<FaissIndex> LoadOrDie(const std::string& path, bool prune) {
  IndexLoadOptions options;
  options.prune_coarse_step = prune;
  absl::StatusOr<std::unique_ptr<FaissIndex>> index = FaissIndex::Load(path, options);
  EXPECT_TRUE(index.ok()) << index.status();
  return index.ok() ? *std::move(index) : nullptr;
}

std::vector<int64_t> ListsOrDie(const FaissIndex& index, const std::vector<float>& queries,
                                int nprobe, int threads = 1) {
  const int64_t count = static_cast<int64_t>(queries.size()) / index.dim();
  std::vector<int64_t> lists(count * nprobe);
  absl::Status assigned = index.CoarseLists(queries.data(), count, nprobe, threads, lists.data());
  EXPECT_TRUE(assigned.ok()) << assigned;
  return lists;
}

// The lists faiss's own flat quantizer chooses for `queries`, searched 16 at a time as RVC's
// real-time calls are (below faiss's BLAS threshold: exact distances, one pair at a time).
std::vector<int64_t> FaissQuantizerLists(const std::string& path, const std::vector<float>& queries,
                                         int nprobe) {
  std::unique_ptr<faiss::Index> index(faiss::read_index(path.c_str()));
  const faiss::Index* quantizer = dynamic_cast<faiss::IndexIVF&>(*index).quantizer;
  const int64_t count = static_cast<int64_t>(queries.size()) / index->d;
  std::vector<float> scores(count * nprobe);
  std::vector<faiss::Index::idx_t> lists(count * nprobe);
  for (int64_t start = 0; start < count; start += 16) {
    quantizer->search(std::min<int64_t>(16, count - start), queries.data() + start * index->d,
                      nprobe, scores.data() + start * nprobe, lists.data() + start * nprobe);
  }
  return std::vector<int64_t>(lists.begin(), lists.end());
}

// Loads `path` with pruning and expects faiss's lists for every nprobe given, with one and two
// threads; with `also_full_step`, also those of timbre's full step (one sgemm, whose rounding
// differs from faiss's: for data whose distances are exact in float).
void ExpectSameListsAsFaiss(const std::string& path, const std::vector<float>& queries,
                            const std::vector<int>& nprobes, bool also_full_step) {
  std::unique_ptr<FaissIndex> pruned = LoadOrDie(path, true);
  std::unique_ptr<FaissIndex> full = LoadOrDie(path, false);
  ASSERT_NE(pruned, nullptr);
  ASSERT_NE(full, nullptr);
  ASSERT_TRUE(pruned->pruned_coarse_step());
  ASSERT_FALSE(full->pruned_coarse_step());
  for (int nprobe : nprobes) {
    const std::vector<int64_t> expected = FaissQuantizerLists(path, queries, nprobe);
    EXPECT_EQ(ListsOrDie(*pruned, queries, nprobe), expected) << path << ", nprobe " << nprobe;
    EXPECT_EQ(ListsOrDie(*pruned, queries, nprobe, /*threads=*/2), expected)
        << path << ", nprobe " << nprobe << ", 2 threads";
    if (also_full_step) {
      EXPECT_EQ(ListsOrDie(*full, queries, nprobe), expected) << path << ", nprobe " << nprobe;
    }
  }
}

TEST(PrunedCoarseStepTest, RvcFilesGetTheListsOfTheFullStep) {
  const std::string data = std::getenv("TIMBRE_TEST_DATA");
  for (const std::string& file : {data + "/added_IVF25_Flat_nprobe_1_fixture_v1.index",
                                  data + "/rvc_build/added_IVF61_Flat_nprobe_1_fixture_v1.index"}) {
    std::unique_ptr<FaissIndex> index = LoadOrDie(file, true);
    ASSERT_NE(index, nullptr);
    const std::vector<float> queries = QueriesNear(*index, 300, 0.3f, 11);
    ExpectSameListsAsFaiss(file, queries, {1, 2, 5, index->nlist()}, /*also_full_step=*/false);
  }
}

// An IVF-Flat index whose `nlist` centroids and `rows` vectors are small integers in
// [-range, range], so every distance is exact in float and ties are frequent; every third
// centroid repeats the one before it.
std::vector<float> IntegerCentroids(int nlist, int dim, int range, uint32_t seed) {
  std::mt19937 random(seed);
  std::uniform_int_distribution<int> value(-range, range);
  std::vector<float> centroids(static_cast<size_t>(nlist) * dim);
  for (int c = 0; c < nlist; ++c) {
    for (int j = 0; j < dim; ++j) {
      centroids[c * dim + j] = c % 3 == 2 ? centroids[(c - 1) * dim + j] : value(random);
    }
  }
  return centroids;
}

std::string WriteIntegerIndex(const ScratchDir& dir, int nlist, int dim, Metric metric, int range,
                              uint32_t seed) {
  const std::vector<float> centroids = IntegerCentroids(nlist, dim, range, seed);
  const int rows = 20 * nlist;
  const std::vector<float> vectors = SmallIntegers(int64_t{rows} * dim, range, seed + 1);
  const faiss::MetricType faiss_metric =
      metric == Metric::kL2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
  auto* quantizer = new faiss::IndexFlat(dim, faiss_metric);
  quantizer->add(nlist, centroids.data());
  faiss::IndexIVFFlat ivf(quantizer, dim, nlist, faiss_metric);
  ivf.own_fields = true;
  ivf.add(rows, vectors.data());
  const std::string path = dir.Join("integer_" + std::to_string(nlist) + "_" +
                                    std::to_string(static_cast<int>(metric)) + ".index");
  faiss::write_index(&ivf, path.c_str());
  return path;
}

class IntegerDataTest : public ::testing::TestWithParam<std::tuple<Metric, int>> {};

TEST_P(IntegerDataTest, TiesAndTinyNlistGetTheListsOfTheFullStep) {
  const Metric metric = std::get<0>(GetParam());
  const int nlist = std::get<1>(GetParam());  // a variable, not a binding: lambdas capture it
  constexpr int kDim = 24;
  ScratchDir dir;
  const std::string path = WriteIntegerIndex(dir, nlist, kDim, metric, 2, 100 + nlist);
  const std::vector<float> queries = SmallIntegers(400 * kDim, 2, 7);
  std::vector<int> nprobes = {1, 2, 3, nlist};
  nprobes.erase(std::remove_if(nprobes.begin(), nprobes.end(), [&](int n) { return n > nlist; }),
                nprobes.end());
  ExpectSameListsAsFaiss(path, queries, nprobes, /*also_full_step=*/true);

  // And the lists are the exact answer: the nprobe best scores, best first; for L2 of equal
  // distances the smaller lists, by list id (faiss's inner-product heaps resolve ties by the
  // order scores arrive in, which the comparison with faiss above covers).
  std::unique_ptr<FaissIndex> pruned = LoadOrDie(path, true);
  ASSERT_NE(pruned, nullptr);
  ASSERT_TRUE(pruned->pruned_coarse_step());
  const std::vector<float> centroids = IntegerCentroids(nlist, kDim, 2, 100 + nlist);
  const int nprobe = std::min(nlist, 3);
  const std::vector<int64_t> lists = ListsOrDie(*pruned, queries, nprobe);
  int ties_at_the_boundary = 0;
  for (int q = 0; q < 400; ++q) {
    std::vector<std::pair<int64_t, int64_t>> ranked;  // (key, list), smaller key is better
    for (int c = 0; c < nlist; ++c) {
      int64_t key = 0;
      for (int j = 0; j < kDim; ++j) {
        const int64_t x = static_cast<int64_t>(queries[q * kDim + j]);
        const int64_t y = static_cast<int64_t>(centroids[c * kDim + j]);
        key += metric == Metric::kL2 ? (x - y) * (x - y) : -x * y;
      }
      ranked.emplace_back(key, c);
    }
    std::sort(ranked.begin(), ranked.end());
    if (nprobe < nlist && ranked[nprobe - 1].first == ranked[nprobe].first) {
      ++ties_at_the_boundary;
    }
    std::vector<int64_t> expected, got;
    for (int i = 0; i < nprobe; ++i) {
      const int64_t list = lists[q * nprobe + i];
      const auto same_list = [&](const auto& entry) { return entry.second == list; };
      got.push_back(metric == Metric::kL2 ? list
                                          : std::find_if(ranked.begin(), ranked.end(), same_list)->first);
      expected.push_back(metric == Metric::kL2 ? ranked[i].second : ranked[i].first);
    }
    EXPECT_EQ(got, expected) << "query " << q;
  }
  if (nlist >= 7) {
    EXPECT_GT(ties_at_the_boundary, 0) << "the data should have ties";
  }
}

INSTANTIATE_TEST_SUITE_P(
    MetricsAndNlists, IntegerDataTest,
    ::testing::Combine(::testing::Values(Metric::kL2, Metric::kInnerProduct),
                       ::testing::Values(1, 2, 3, 7, 40, 300)));

class RandomDataTest : public ::testing::TestWithParam<Metric> {};

TEST_P(RandomDataTest, SearchesReturnTheNeighboursOfTheFullStep) {
  const FrameMatrix frames = GenerateClusteredFrames(6000, 64, 100, 3);
  std::unique_ptr<FaissIndex> trained = TrainOrDie("IVF150,Flat", GetParam(), frames);
  ASSERT_NE(trained, nullptr);
  ScratchDir dir;
  const std::string path = dir.Join("random.index");
  ASSERT_TRUE(trained->Write(path).ok());
  const std::vector<float> queries = QueriesNear(*trained, 500, 0.5f, 9);
  ExpectSameListsAsFaiss(path, queries, {1, 2, 4, 8, 150}, /*also_full_step=*/false);

  std::unique_ptr<FaissIndex> pruned = LoadOrDie(path, true);
  std::unique_ptr<FaissIndex> full = LoadOrDie(path, false);
  ASSERT_NE(pruned, nullptr);
  ASSERT_NE(full, nullptr);
  for (int nprobe : {1, 4}) {
    SearchParams params;
    params.k = 8;
    params.nprobe = nprobe;
    std::vector<float> pruned_scores(500 * 8), full_scores(500 * 8);
    std::vector<int64_t> pruned_ids(500 * 8), full_ids(500 * 8);
    ASSERT_TRUE(pruned->Search(queries.data(), 500, params, 1, pruned_scores.data(),
                               pruned_ids.data()).ok());
    ASSERT_TRUE(full->Search(queries.data(), 500, params, 1, full_scores.data(),
                             full_ids.data()).ok());
    EXPECT_EQ(pruned_ids, full_ids) << "nprobe " << nprobe;
    EXPECT_EQ(pruned_scores, full_scores) << "nprobe " << nprobe;
  }
}

INSTANTIATE_TEST_SUITE_P(Metrics, RandomDataTest,
                         ::testing::Values(Metric::kL2, Metric::kInnerProduct));

// An IVF100,Flat index of 4,000 clustered 64-d frames, written into `dir`; its path.
std::string Write64DimIndex(const ScratchDir& dir) {
  const FrameMatrix frames = GenerateClusteredFrames(4000, 64, 50, 5);
  std::unique_ptr<FaissIndex> trained = TrainOrDie("IVF100,Flat", Metric::kL2, frames);
  const std::string path = dir.Join("ivf100.index");
  EXPECT_TRUE(trained != nullptr && trained->Write(path).ok());
  return path;
}

TEST(PrunedCoarseStepTest, ByDefaultEveryFlatCoarseQuantizerIsPruned) {
  ScratchDir dir;
  const std::string path = Write64DimIndex(dir);
  EXPECT_TRUE(IndexLoadOptions().prune_coarse_step);
  absl::StatusOr<std::unique_ptr<FaissIndex>> by_default = FaissIndex::Load(path);
  ASSERT_TRUE(by_default.ok()) << by_default.status();
  EXPECT_TRUE((*by_default)->pruned_coarse_step());
  const std::vector<float> queries = QueriesNear(**by_default, 100, 0.3f, 4);
  EXPECT_EQ(ListsOrDie(**by_default, queries, 3), FaissQuantizerLists(path, queries, 3));
}

TEST(PrunedCoarseStepTest, MemoryIsCountedInTheIndexBytes) {
  ScratchDir dir;
  const std::string path = Write64DimIndex(dir);
  std::unique_ptr<FaissIndex> pruned = LoadOrDie(path, true);
  std::unique_ptr<FaissIndex> full = LoadOrDie(path, false);
  ASSERT_NE(pruned, nullptr);
  ASSERT_NE(full, nullptr);
  // The codes of 100 centroids padded to 112 (blocks of 16), 64 bytes each; the mean, and five
  // constants per centroid.
  const int64_t expected = 112 * 64 + 4 * (64 + 5 * 100);
  EXPECT_EQ(pruned->memory_bytes() - full->memory_bytes(), expected);
}

TEST(PrunedCoarseStepTest, IndexesWithoutAFlatCoarseQuantizerHaveNoLists) {
  const FrameMatrix frames = GenerateClusteredFrames(500, 16, 10, 1);
  std::unique_ptr<FaissIndex> flat = TrainOrDie("Flat", Metric::kL2, frames);
  ASSERT_NE(flat, nullptr);
  EXPECT_FALSE(flat->pruned_coarse_step());
  std::vector<int64_t> lists(1);
  EXPECT_THAT(flat->CoarseLists(frames.row(0), 1, 1, 1, lists.data()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("Flat")));
}

TEST(PrunedCoarseStepTest, NprobeOutsideTheListsIsInvalidArgument) {
  const FrameMatrix frames = GenerateClusteredFrames(500, 16, 10, 1);
  std::unique_ptr<FaissIndex> ivf = TrainOrDie("IVF8,Flat", Metric::kL2, frames);
  ASSERT_NE(ivf, nullptr);
  std::vector<int64_t> lists(9);
  EXPECT_THAT(ivf->CoarseLists(frames.row(0), 1, 9, 1, lists.data()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("0..8")));
  EXPECT_THAT(ivf->CoarseLists(frames.row(0), 1, -1, 1, lists.data()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nprobe is -1")));
}

TEST(PrunedCoarseStepTest, CreateRejectsBadShapesAndValues) {
  std::vector<float> centroids(64, 1.0f);
  EXPECT_THAT(PrunedCoarseStep::Create(centroids.data(), 0, 8, Metric::kL2).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nlist >= 1 (is 0)")));
  EXPECT_THAT(PrunedCoarseStep::Create(centroids.data(), 8, 0, Metric::kL2).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dim in 1..65536 (is 0)")));
  EXPECT_THAT(
      PrunedCoarseStep::Create(centroids.data(), 1, PrunedCoarseStep::kMaxDim + 1, Metric::kL2)
          .status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("(is 65537)")));
  centroids[5 * 8 + 3] = std::nanf("");
  EXPECT_THAT(PrunedCoarseStep::Create(centroids.data(), 8, 8, Metric::kL2).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("coarse centroid 5 has a value that is not finite")));
  centroids[5 * 8 + 3] = -std::numeric_limits<float>::infinity();
  EXPECT_THAT(PrunedCoarseStep::Create(centroids.data(), 8, 8, Metric::kInnerProduct).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("coarse centroid 5")));
}

TEST(PrunedCoarseStepTest, IndexWithACentroidThatIsNotFiniteIsRefused) {
  ScratchDir dir;
  constexpr int kDim = 8;
  std::vector<float> centroids = IntegerCentroids(4, kDim, 2, 3);
  centroids[2 * kDim + 1] = std::nanf("");
  auto* quantizer = new faiss::IndexFlat(kDim, faiss::METRIC_L2);
  quantizer->add(4, centroids.data());
  faiss::IndexIVFFlat ivf(quantizer, kDim, 4, faiss::METRIC_L2);
  ivf.own_fields = true;
  const std::vector<float> vectors = SmallIntegers(20 * kDim, 2, 4);
  ivf.add(20, vectors.data());
  const std::string path = dir.Join("nan.index");
  faiss::write_index(&ivf, path.c_str());
  EXPECT_THAT(FaissIndex::Load(path).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("coarse centroid 2")));
  IndexLoadOptions full;
  full.prune_coarse_step = false;
  absl::StatusOr<std::unique_ptr<FaissIndex>> unpruned = FaissIndex::Load(path, full);
  EXPECT_TRUE(unpruned.ok()) << unpruned.status()
                             << ": only the pruned step needs finite centroids";
}

// The lists of PrunedCoarseStep::Create(..., kernel) for `queries`, 16 at a time.
std::vector<int64_t> StepLists(const std::vector<float>& centroids, int nlist, int dim,
                               Metric metric, PrunedCoarseStep::Kernel kernel,
                               const std::vector<float>& queries, int nprobe) {
  absl::StatusOr<std::unique_ptr<PrunedCoarseStep>> step =
      PrunedCoarseStep::Create(centroids.data(), nlist, dim, metric, kernel);
  EXPECT_TRUE(step.ok()) << step.status();
  if (!step.ok()) return {};
  const int64_t count = static_cast<int64_t>(queries.size()) / dim;
  std::vector<float> scores(count * nprobe);
  std::vector<int64_t> lists(count * nprobe);
  for (int64_t start = 0; start < count; start += 16) {
    (*step)->Assign(queries.data() + start * dim, std::min<int64_t>(16, count - start), nprobe, 1,
                    scores.data() + start * nprobe, lists.data() + start * nprobe);
  }
  return lists;
}

// The lists of faiss's flat quantizer over `centroids`, 16 queries at a time.
std::vector<int64_t> FlatLists(const std::vector<float>& centroids, int nlist, int dim,
                               Metric metric, const std::vector<float>& queries, int nprobe) {
  faiss::IndexFlat flat(dim,
                        metric == Metric::kL2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT);
  flat.add(nlist, centroids.data());
  const int64_t count = static_cast<int64_t>(queries.size()) / dim;
  std::vector<float> scores(count * nprobe);
  std::vector<faiss::Index::idx_t> lists(count * nprobe);
  for (int64_t start = 0; start < count; start += 16) {
    flat.search(std::min<int64_t>(16, count - start), queries.data() + start * dim, nprobe,
                scores.data() + start * nprobe, lists.data() + start * nprobe);
  }
  return std::vector<int64_t>(lists.begin(), lists.end());
}

// Centroids whose 8-bit codes are poor: values spanning many orders of magnitude within a
// centroid, a centroid of zeros, centroids equal to the mean, and a dim that is not a multiple
// of 4; queries near them and far from them.
void WildCentroids(int nlist, int dim, uint32_t seed, std::vector<float>* centroids,
                   std::vector<float>* queries) {
  std::mt19937 random(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-12, 12);
  centroids->assign(static_cast<size_t>(nlist) * dim, 0.0f);
  for (int c = 1; c < nlist; ++c) {
    for (int j = 0; j < dim; ++j) {
      (*centroids)[c * dim + j] = normal(random) * std::ldexp(1.0f, exponent(random));
    }
  }
  queries->clear();
  for (int q = 0; q < 300; ++q) {
    const int near = q % nlist;
    const float spread = q % 3 == 0 ? 1e-3f : (q % 3 == 1 ? 1.0f : 1e3f);
    for (int j = 0; j < dim; ++j) {
      queries->push_back((*centroids)[near * dim + j] + spread * normal(random));
    }
  }
}

class KernelTest : public ::testing::TestWithParam<std::tuple<PrunedCoarseStep::Kernel, Metric>> {};

TEST_P(KernelTest, ListsAreFaissListsWhateverTheCodesLose) {
  const auto [kernel, metric] = GetParam();
  for (const auto& [nlist, dim] : {std::pair{50, 37}, std::pair{7, 3}, std::pair{70, 130}}) {
    std::vector<float> centroids, queries;
    WildCentroids(nlist, dim, 17 + dim, &centroids, &queries);
    for (int nprobe : {1, 3, nlist}) {
      EXPECT_EQ(StepLists(centroids, nlist, dim, metric, kernel, queries, nprobe),
                FlatLists(centroids, nlist, dim, metric, queries, nprobe))
          << "nlist " << nlist << ", dim " << dim << ", nprobe " << nprobe;
    }
  }
}

TEST_P(KernelTest, TinyValuesGetFaissLists) {
  // Values whose codes' scale would not be a normal float: below it, every value is the error.
  const auto [kernel, metric] = GetParam();
  constexpr int kNlist = 20, kDim = 16;
  std::mt19937 random(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> centroids(kNlist * kDim), queries(64 * kDim);
  for (float& x : centroids) x = 1e-37f * normal(random);
  for (float& x : queries) x = 1e-37f * normal(random);
  // A dimension equal to the mean in every vector (0 after centring), and a denormal.
  for (int c = 0; c < kNlist; ++c) centroids[c * kDim + 1] = 0.0f;
  for (int q = 0; q < 64; ++q) queries[q * kDim + 1] = 0.0f;
  centroids[3 * kDim] = 1e-44f;
  for (int nprobe : {1, 4}) {
    EXPECT_EQ(StepLists(centroids, kNlist, kDim, metric, kernel, queries, nprobe),
              FlatLists(centroids, kNlist, kDim, metric, queries, nprobe))
        << "nprobe " << nprobe;
  }
}

TEST_P(KernelTest, HugeValuesGetFaissListsOrNone) {
  // Finite values whose squared norms overflow float, so that the bounds are not finite: no
  // centroid may be skipped on them. Queries near a centroid have finite distances and get
  // faiss's lists; queries far from all have only infinite distances, where no list is nearer
  // than another, and get valid lists or none (-1), never a read outside the centroids.
  const auto [kernel, metric] = GetParam();
  constexpr int kNlist = 20, kDim = 16, kQueries = 40;
  std::mt19937 random(6);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> centroids(kNlist * kDim), near(kQueries * kDim), far(kQueries * kDim);
  for (float& x : centroids) x = 1e19f * normal(random);
  for (int q = 0; q < kQueries; ++q) {
    for (int j = 0; j < kDim; ++j) {
      near[q * kDim + j] = centroids[(q % kNlist) * kDim + j] * (1.0f + 1e-3f * normal(random));
      far[q * kDim + j] = 1e21f * normal(random);
    }
  }
  for (int nprobe : {1, 4}) {
    const std::vector<int64_t> near_lists =
        StepLists(centroids, kNlist, kDim, metric, kernel, near, nprobe);
    if (metric == Metric::kL2) {  // inner products of these overflow as well
      EXPECT_EQ(near_lists, FlatLists(centroids, kNlist, kDim, metric, near, nprobe))
          << "nprobe " << nprobe;
    }
    std::vector<int64_t> lists = StepLists(centroids, kNlist, kDim, metric, kernel, far, nprobe);
    lists.insert(lists.end(), near_lists.begin(), near_lists.end());
    for (int64_t list : lists) {
      EXPECT_TRUE(list >= -1 && list < kNlist) << list << ", nprobe " << nprobe;
    }
  }
}

TEST_P(KernelTest, RvcFileListsAreFaissLists) {
  const auto [kernel, metric] = GetParam();
  const std::string file = std::string(std::getenv("TIMBRE_TEST_DATA")) +
                           "/rvc_build/added_IVF61_Flat_nprobe_1_fixture_v1.index";
  std::unique_ptr<FaissIndex> index = LoadOrDie(file, false);
  ASSERT_NE(index, nullptr);
  std::unique_ptr<faiss::Index> read(faiss::read_index(file.c_str()));
  const auto& ivf = dynamic_cast<faiss::IndexIVF&>(*read);
  const auto& flat = dynamic_cast<const faiss::IndexFlat&>(*ivf.quantizer);
  const std::vector<float> centroids(flat.get_xb(), flat.get_xb() + ivf.nlist * ivf.d);
  const std::vector<float> queries = QueriesNear(*index, 300, 0.3f, 5);
  for (int nprobe : {1, 4}) {
    EXPECT_EQ(StepLists(centroids, ivf.nlist, ivf.d, metric, kernel, queries, nprobe),
              FlatLists(centroids, ivf.nlist, ivf.d, metric, queries, nprobe))
        << "nprobe " << nprobe;
  }
}

INSTANTIATE_TEST_SUITE_P(KernelsAndMetrics, KernelTest,
                         ::testing::Combine(::testing::Values(PrunedCoarseStep::Kernel::kBest,
                                                              PrunedCoarseStep::Kernel::kPortable),
                                            ::testing::Values(Metric::kL2, Metric::kInnerProduct)));

TEST(PrunedCoarseStepTest, KernelsAreTheBestTheCpuHasUpToTheOneAskedFor) {
  using Kernel = PrunedCoarseStep::Kernel;
  const std::vector<float> centroids(64, 1.0f);
  auto kernel = [&](Kernel asked) {
    absl::StatusOr<std::unique_ptr<PrunedCoarseStep>> step =
        PrunedCoarseStep::Create(centroids.data(), 8, 8, Metric::kL2, asked);
    EXPECT_TRUE(step.ok()) << step.status();
    return step.ok() ? (*step)->kernel() : Kernel::kPortable;
  };
  __builtin_cpu_init();
  const bool vnni = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512vl");
  EXPECT_EQ(kernel(Kernel::kPortable), Kernel::kPortable);
  EXPECT_EQ(kernel(Kernel::kAvx512Vnni), vnni ? Kernel::kAvx512Vnni : Kernel::kPortable);
  if (vnni) {
    EXPECT_NE(kernel(Kernel::kBest), Kernel::kPortable);
  } else {
    EXPECT_EQ(kernel(Kernel::kBest), Kernel::kPortable);
  }
}

}  // namespace
}  // namespace timbre
