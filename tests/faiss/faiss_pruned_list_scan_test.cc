// The pruned exact scan of IVF-Flat lists (faiss_pruned_list_scan.h), seen through FaissIndex and
// on its own with each integer kernel: faiss's neighbours and scores, bit for bit, on RVC's files
// and on random data with ties, for L2 and inner product, any nprobe and k, tiny and empty lists,
// and vectors whose 8-bit codes are poor, huge or not finite.
#include "server/faiss/faiss_pruned_list_scan.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/index_io.h>

#include "gtest/gtest.h"
#include "server/build/demo_speaker.h"
#include "server/faiss/faiss_index.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::timbre::testing::QueriesNear;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::SmallIntegers;
using ::timbre::testing::TrainOrDie;
using Kernel = PrunedListScan::Kernel;

struct Neighbours {
  std::vector<float> scores;
  std::vector<int64_t> ids;
};

std::unique_ptr<FaissIndex> LoadOrDie(const std::string& path, bool prune_lists) {
  IndexLoadOptions options;
  options.prune_list_scan = prune_lists;
  absl::StatusOr<std::unique_ptr<FaissIndex>> index = FaissIndex::Load(path, options);
  EXPECT_TRUE(index.ok()) << index.status();
  return index.ok() ? *std::move(index) : nullptr;
}

Neighbours SearchOrDie(const FaissIndex& index, const std::vector<float>& queries, int k,
                       int nprobe) {
  const int64_t count = static_cast<int64_t>(queries.size()) / index.dim();
  SearchParams params;
  params.k = k;
  params.nprobe = nprobe;
  Neighbours found{std::vector<float>(count * k), std::vector<int64_t>(count * k)};
  // 16 queries per call, as RVC's real-time calls are.
  for (int64_t start = 0; start < count; start += 16) {
    const int64_t rows = std::min<int64_t>(16, count - start);
    absl::Status searched =
        index.Search(queries.data() + start * index.dim(), rows, params, 1,
                     found.scores.data() + start * k, found.ids.data() + start * k);
    EXPECT_TRUE(searched.ok()) << searched;
  }
  return found;
}

// Loads `path` with and without the pruned scan and expects the same neighbours and scores for
// every (k, nprobe) given.
void ExpectFaissNeighbours(const std::string& path, const std::vector<float>& queries,
                           const std::vector<int>& ks, const std::vector<int>& nprobes) {
  std::unique_ptr<FaissIndex> pruned = LoadOrDie(path, true);
  std::unique_ptr<FaissIndex> faiss_scan = LoadOrDie(path, false);
  ASSERT_NE(pruned, nullptr);
  ASSERT_NE(faiss_scan, nullptr);
  ASSERT_TRUE(pruned->pruned_list_scan());
  ASSERT_FALSE(faiss_scan->pruned_list_scan());
  for (int k : ks) {
    for (int nprobe : nprobes) {
      const Neighbours expected = SearchOrDie(*faiss_scan, queries, k, nprobe);
      const Neighbours got = SearchOrDie(*pruned, queries, k, nprobe);
      EXPECT_EQ(got.ids, expected.ids) << path << ", k " << k << ", nprobe " << nprobe;
      EXPECT_EQ(got.scores, expected.scores) << path << ", k " << k << ", nprobe " << nprobe;
    }
  }
}

TEST(PrunedListScanTest, RvcFilesGetFaissNeighbours) {
  const std::string data = std::getenv("TIMBRE_TEST_DATA");
  for (const std::string& file : {data + "/added_IVF25_Flat_nprobe_1_fixture_v1.index",
                                  data + "/rvc_build/added_IVF61_Flat_nprobe_1_fixture_v1.index"}) {
    std::unique_ptr<FaissIndex> index = LoadOrDie(file, true);
    ASSERT_NE(index, nullptr);
    const std::vector<float> queries = QueriesNear(*index, 300, 0.3f, 11);
    ExpectFaissNeighbours(file, queries, {1, 8}, {1, 2, 5, index->nlist()});
  }
}

// An IVF-Flat index over `centroids` ([nlist, dim]) holding `vectors`, as faiss assigns them or,
// with `by_row`, vector i in list i % nlist (faiss's assignment fails on values that are not
// finite).
std::unique_ptr<faiss::IndexIVFFlat> MakeIvf(const std::vector<float>& centroids, int nlist,
                                             int dim, Metric metric,
                                             const std::vector<float>& vectors,
                                             bool by_row = false) {
  const faiss::MetricType faiss_metric =
      metric == Metric::kL2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
  auto* quantizer = new faiss::IndexFlat(dim, faiss_metric);
  quantizer->add(nlist, centroids.data());
  auto ivf = std::make_unique<faiss::IndexIVFFlat>(quantizer, dim, nlist, faiss_metric);
  ivf->own_fields = true;
  const int64_t rows = static_cast<int64_t>(vectors.size()) / dim;
  if (!by_row) {
    ivf->add(rows, vectors.data());
    return ivf;
  }
  std::vector<faiss::Index::idx_t> lists(rows);
  for (int64_t i = 0; i < rows; ++i) lists[i] = i % nlist;
  ivf->add_core(rows, vectors.data(), nullptr, lists.data());
  return ivf;
}

class IntegerDataTest : public ::testing::TestWithParam<std::tuple<Metric, int>> {};

TEST_P(IntegerDataTest, TiesTinyAndEmptyListsGetFaissNeighbours) {
  // Small integers: every distance is exact in float and ties are frequent. For L2 the last list
  // stays empty; with nlist 40 lists hold fewer than k vectors.
  const Metric metric = std::get<0>(GetParam());
  const int nlist = std::get<1>(GetParam());  // a variable, not a binding: lambdas capture it
  constexpr int kDim = 24;
  const int rows = 6 * nlist;
  std::vector<float> centroids = SmallIntegers(nlist * kDim, 2, 100 + nlist);
  const bool empty_list = metric == Metric::kL2 && nlist > 2;
  if (empty_list) {  // a centroid far from every vector: its list stays empty
    std::fill(centroids.end() - kDim, centroids.end(), 100.0f);
  }
  std::unique_ptr<faiss::IndexIVFFlat> ivf =
      MakeIvf(centroids, nlist, kDim, metric, SmallIntegers(rows * kDim, 2, 200 + nlist));
  if (empty_list) {
    ASSERT_EQ(ivf->invlists->list_size(nlist - 1), 0u);
  }
  ScratchDir dir;
  const std::string path = dir.Join("integer.index");
  faiss::write_index(ivf.get(), path.c_str());
  std::vector<int> nprobes = {1, 2, 3, nlist};
  nprobes.erase(std::remove_if(nprobes.begin(), nprobes.end(), [&](int n) { return n > nlist; }),
                nprobes.end());
  ExpectFaissNeighbours(path, SmallIntegers(400 * kDim, 2, 7), {1, 8, 50}, nprobes);
}

INSTANTIATE_TEST_SUITE_P(MetricsAndNlists, IntegerDataTest,
                         ::testing::Combine(::testing::Values(Metric::kL2, Metric::kInnerProduct),
                                            ::testing::Values(1, 2, 3, 40)));

class RandomDataTest : public ::testing::TestWithParam<Metric> {};

TEST_P(RandomDataTest, ClusteredFramesGetFaissNeighbours) {
  const FrameMatrix frames = GenerateClusteredFrames(6000, 64, 100, 3);
  std::unique_ptr<FaissIndex> trained = TrainOrDie("IVF150,Flat", GetParam(), frames);
  ASSERT_NE(trained, nullptr);
  ScratchDir dir;
  const std::string path = dir.Join("random.index");
  ASSERT_TRUE(trained->Write(path).ok());
  ExpectFaissNeighbours(path, QueriesNear(*trained, 500, 0.5f, 9), {8}, {1, 4, 150});
}

INSTANTIATE_TEST_SUITE_P(Metrics, RandomDataTest,
                         ::testing::Values(Metric::kL2, Metric::kInnerProduct));

TEST(PrunedListScanTest, OnlyIvfFlatListsInTheHeapArePrunedAndByDefault) {
  EXPECT_TRUE(IndexLoadOptions().prune_list_scan);
  const FrameMatrix frames = GenerateClusteredFrames(2000, 32, 20, 1);
  for (const auto& [description, pruned] :
       {std::pair{"IVF20,Flat", true}, std::pair{"PCA16,IVF20,Flat", true},
        std::pair{"IVF20,SQ8", false}, std::pair{"Flat", false}}) {
    std::unique_ptr<FaissIndex> trained = TrainOrDie(description, Metric::kL2, frames);
    ASSERT_NE(trained, nullptr);
    ScratchDir dir;
    const std::string path = dir.Join("index");
    ASSERT_TRUE(trained->Write(path).ok());
    absl::StatusOr<std::unique_ptr<FaissIndex>> by_default = FaissIndex::Load(path);
    ASSERT_TRUE(by_default.ok()) << by_default.status();
    EXPECT_EQ((*by_default)->pruned_list_scan(), pruned) << description;
    // Mapped lists stay out of the heap: faiss scans them.
    IndexLoadOptions mmap;
    mmap.mmap = true;
    absl::StatusOr<std::unique_ptr<FaissIndex>> mapped = FaissIndex::Load(path, mmap);
    ASSERT_TRUE(mapped.ok()) << mapped.status();
    EXPECT_FALSE((*mapped)->pruned_list_scan()) << description;
  }
}

TEST(PrunedListScanTest, MemoryIsCountedInTheIndexBytes) {
  // 4,000 vectors of 64 dimensions in 100 lists: per list its vectors rounded up to blocks of 16
  // (64 code bytes and five 4-byte constants each), and one 8-byte block offset per list and one
  // more.
  const FrameMatrix frames = GenerateClusteredFrames(4000, 64, 50, 5);
  std::unique_ptr<FaissIndex> trained = TrainOrDie("IVF100,Flat", Metric::kL2, frames);
  ASSERT_NE(trained, nullptr);
  ScratchDir dir;
  const std::string path = dir.Join("ivf100.index");
  ASSERT_TRUE(trained->Write(path).ok());
  std::unique_ptr<faiss::Index> read(faiss::read_index(path.c_str()));
  const auto& ivf = dynamic_cast<const faiss::IndexIVF&>(*read);
  int64_t slots = 0;
  for (size_t list = 0; list < ivf.nlist; ++list) {
    slots += (static_cast<int64_t>(ivf.invlists->list_size(list)) + 15) / 16 * 16;
  }
  std::unique_ptr<FaissIndex> pruned = LoadOrDie(path, true);
  std::unique_ptr<FaissIndex> faiss_scan = LoadOrDie(path, false);
  ASSERT_NE(pruned, nullptr);
  ASSERT_NE(faiss_scan, nullptr);
  EXPECT_EQ(pruned->memory_bytes() - faiss_scan->memory_bytes(), slots * (64 + 5 * 4) + 101 * 8);
}

// faiss's scan of `ivf`'s nearest `nprobe` lists (faiss's flat quantizer), 16 queries at a time.
Neighbours FaissScan(const faiss::IndexIVF& ivf, const std::vector<float>& queries, int k,
                     int nprobe) {
  const int64_t count = static_cast<int64_t>(queries.size()) / ivf.d;
  Neighbours found{std::vector<float>(count * k), std::vector<int64_t>(count * k)};
  std::vector<float> coarse(count * nprobe);
  std::vector<faiss::Index::idx_t> lists(count * nprobe), ids(count * k);
  ivf.quantizer->search(count, queries.data(), nprobe, coarse.data(), lists.data());
  omp_set_num_threads(1);
  faiss::SearchParametersIVF params;  // faiss reads `lists` with its nprobe
  params.nprobe = nprobe;
  ivf.search_preassigned(count, queries.data(), k, lists.data(), coarse.data(), found.scores.data(),
                         ids.data(), false, &params);
  found.ids.assign(ids.begin(), ids.end());
  return found;
}

// PrunedListScan's scan of the same lists with `kernel`.
Neighbours PrunedScan(const faiss::IndexIVFFlat& ivf, Kernel kernel,
                      const std::vector<float>& queries, int k, int nprobe) {
  const auto& flat = dynamic_cast<const faiss::IndexFlat&>(*ivf.quantizer);
  std::unique_ptr<PrunedListScan> scan = PrunedListScan::Create(ivf, flat.get_xb(), kernel);
  EXPECT_NE(scan, nullptr);
  if (scan == nullptr) return {};
  const int64_t count = static_cast<int64_t>(queries.size()) / ivf.d;
  Neighbours found{std::vector<float>(count * k), std::vector<int64_t>(count * k)};
  std::vector<float> coarse(count * nprobe);
  std::vector<faiss::Index::idx_t> faiss_lists(count * nprobe);
  ivf.quantizer->search(count, queries.data(), nprobe, coarse.data(), faiss_lists.data());
  const std::vector<int64_t> lists(faiss_lists.begin(), faiss_lists.end());
  for (int64_t start = 0; start < count; start += 16) {
    scan->Search(queries.data() + start * ivf.d, std::min<int64_t>(16, count - start), k, nprobe,
                 lists.data() + start * nprobe, found.scores.data() + start * k,
                 found.ids.data() + start * k);
  }
  return found;
}

// Vectors whose 8-bit codes are poor: values spanning many orders of magnitude within a vector,
// zero vectors, vectors equal to their centroid, and a dim that is not a multiple of 4; queries
// near them and far from them.
void WildVectors(int nlist, int dim, uint32_t seed, std::vector<float>* centroids,
                 std::vector<float>* vectors, std::vector<float>* queries) {
  std::mt19937 random(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-12, 12);
  auto wild = [&] { return normal(random) * std::ldexp(1.0f, exponent(random)); };
  centroids->assign(static_cast<size_t>(nlist) * dim, 0.0f);
  for (size_t i = dim; i < centroids->size(); ++i) (*centroids)[i] = wild();
  vectors->clear();
  for (int v = 0; v < 30 * nlist; ++v) {
    const int near = v % nlist;
    for (int j = 0; j < dim; ++j) {
      const float centroid = (*centroids)[near * dim + j];
      vectors->push_back(v % 7 == 0 ? 0.0f : (v % 11 == 0 ? centroid : centroid + wild()));
    }
  }
  queries->clear();
  for (int q = 0; q < 200; ++q) {
    const float spread = q % 3 == 0 ? 1e-3f : (q % 3 == 1 ? 1.0f : 1e3f);
    for (int j = 0; j < dim; ++j) {
      queries->push_back((*vectors)[(q % (30 * nlist)) * dim + j] + spread * normal(random));
    }
  }
}

class KernelTest : public ::testing::TestWithParam<std::tuple<Kernel, Metric>> {};

TEST_P(KernelTest, NeighboursAreFaissNeighboursWhateverTheCodesLose) {
  const auto [kernel, metric] = GetParam();
  for (const auto& [nlist, dim] : {std::pair{20, 37}, std::pair{5, 3}, std::pair{12, 130}}) {
    std::vector<float> centroids, vectors, queries;
    WildVectors(nlist, dim, 17 + dim, &centroids, &vectors, &queries);
    std::unique_ptr<faiss::IndexIVFFlat> ivf = MakeIvf(centroids, nlist, dim, metric, vectors);
    for (int nprobe : {1, 3, nlist}) {
      for (int k : {1, 8}) {
        const Neighbours expected = FaissScan(*ivf, queries, k, nprobe);
        const Neighbours got = PrunedScan(*ivf, kernel, queries, k, nprobe);
        EXPECT_EQ(got.ids, expected.ids) << "dim " << dim << ", nprobe " << nprobe << ", k " << k;
        EXPECT_EQ(got.scores, expected.scores)
            << "dim " << dim << ", nprobe " << nprobe << ", k " << k;
      }
    }
  }
}

TEST_P(KernelTest, TinyHugeAndNonFiniteVectorsGetFaissNeighbours) {
  // Values whose codes' scale is not a normal float, finite values whose squared norms overflow
  // float (the bounds are not finite: nothing may be skipped on them), and vectors holding NaN
  // or infinity (no code: always scored exactly, as faiss scores them).
  const auto [kernel, metric] = GetParam();
  constexpr int kNlist = 6, kDim = 16;
  std::mt19937 random(6);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (float magnitude : {1e-37f, 1e19f, 1.0f}) {
    std::vector<float> centroids(kNlist * kDim), vectors(300 * kDim), queries(64 * kDim);
    for (float& x : centroids) x = magnitude * normal(random);
    for (size_t i = 0; i < vectors.size(); ++i) {
      vectors[i] = centroids[i % (kNlist * kDim)] + magnitude * normal(random);
    }
    for (size_t i = 0; i < queries.size(); ++i) {
      queries[i] = vectors[(i * 7) % vectors.size()] * (1.0f + 1e-3f * normal(random));
    }
    if (magnitude == 1.0f) {
      vectors[5 * kDim + 3] = std::nanf("");
      vectors[40 * kDim] = std::numeric_limits<float>::infinity();
      vectors[41 * kDim + 15] = -std::numeric_limits<float>::infinity();
    }
    std::unique_ptr<faiss::IndexIVFFlat> ivf =
        MakeIvf(centroids, kNlist, kDim, metric, vectors, /*by_row=*/true);
    for (int nprobe : {1, 4}) {
      const Neighbours expected = FaissScan(*ivf, queries, 8, nprobe);
      const Neighbours got = PrunedScan(*ivf, kernel, queries, 8, nprobe);
      EXPECT_EQ(got.ids, expected.ids) << "magnitude " << magnitude << ", nprobe " << nprobe;
      // NaN scores compare unequal: compare their bits' meaning instead.
      ASSERT_EQ(got.scores.size(), expected.scores.size());
      for (size_t i = 0; i < got.scores.size(); ++i) {
        EXPECT_TRUE(got.scores[i] == expected.scores[i] ||
                    (std::isnan(got.scores[i]) && std::isnan(expected.scores[i])))
            << "magnitude " << magnitude << ", nprobe " << nprobe << ", at " << i;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(KernelsAndMetrics, KernelTest,
                         ::testing::Combine(::testing::Values(Kernel::kBest, Kernel::kPortable),
                                            ::testing::Values(Metric::kL2, Metric::kInnerProduct)));

TEST(PrunedListScanTest, KernelsAreVnniWhereTheCpuHasItUnlessPortableIsAsked) {
  std::vector<float> centroids(2 * 8, 1.0f), vectors(10 * 8, 2.0f);
  std::unique_ptr<faiss::IndexIVFFlat> ivf = MakeIvf(centroids, 2, 8, Metric::kL2, vectors);
  const auto& flat = dynamic_cast<const faiss::IndexFlat&>(*ivf->quantizer);
  __builtin_cpu_init();
  const bool vnni = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512vl");
  EXPECT_EQ(PrunedListScan::Create(*ivf, flat.get_xb(), Kernel::kPortable)->kernel(),
            Kernel::kPortable);
  EXPECT_EQ(PrunedListScan::Create(*ivf, flat.get_xb(), Kernel::kBest)->kernel(),
            vnni ? Kernel::kAvx512Vnni : Kernel::kPortable);
}

}  // namespace
}  // namespace timbre
