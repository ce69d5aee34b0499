// timbre's scan of 8-bit scalar codes (faiss_sq8_scan.h), seen through FaissIndex: faiss's
// neighbours and distances up to float rounding, for L2 and inner product, codes of residuals or
// of the vectors, per-dimension or uniform ranges, lists in memory or memory-mapped, behind a PCA
// with re-ranking, and lists too short for k.
#include "server/faiss/faiss_sq8_scan.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <faiss/IndexFlat.h>
#include <faiss/IndexScalarQuantizer.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/build/demo_speaker.h"
#include "server/faiss/faiss_index.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::HasSubstr;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;
using ::timbre::testing::TrainOrDie;
using ::timbre::testing::WriteFile;

constexpr int kDim = 20;  // not a multiple of 8: the kernel's tail is used too
constexpr int kNlist = 12;
constexpr int64_t kRows = 3000;

struct Neighbours {
  std::vector<float> scores;
  std::vector<int64_t> ids;
};

Neighbours TimbreSearch(const FaissIndex& index, const FrameMatrix& queries, int k, int nprobe,
                        int k_factor = 0, bool unpruned = false) {
  Neighbours result{std::vector<float>(queries.rows * k), std::vector<int64_t>(queries.rows * k)};
  SearchParams params;
  params.k = k;
  params.nprobe = nprobe;
  params.k_factor = k_factor;
  params.unpruned = unpruned;
  const absl::Status searched = index.Search(queries.values.data(), queries.rows, params, 1,
                                             result.scores.data(), result.ids.data());
  EXPECT_TRUE(searched.ok()) << searched;
  return result;
}

// faiss's own search of the file, 16 queries at a time as real-time calls are.
Neighbours FaissSearch(const std::string& path, const FrameMatrix& queries, int k, int nprobe) {
  std::unique_ptr<faiss::Index> index(faiss::read_index(path.c_str()));
  dynamic_cast<faiss::IndexIVF&>(*index).nprobe = nprobe;
  Neighbours result{std::vector<float>(queries.rows * k), std::vector<int64_t>(queries.rows * k)};
  std::vector<faiss::Index::idx_t> ids(queries.rows * k);
  for (int64_t start = 0; start < queries.rows; start += 16) {
    index->search(std::min<int64_t>(16, queries.rows - start), queries.row(start), k,
                  result.scores.data() + start * k, ids.data() + start * k);
  }
  result.ids.assign(ids.begin(), ids.end());
  return result;
}

FrameMatrix QueriesNear(const FrameMatrix& data, int count, uint32_t seed) {
  std::mt19937 random(seed);
  std::normal_distribution<float> noise(0.0f, 0.5f);
  std::uniform_int_distribution<int64_t> pick(0, data.rows - 1);
  FrameMatrix queries{count, data.dim, {}};
  for (int i = 0; i < count; ++i) {
    const float* row = data.row(pick(random));
    for (int j = 0; j < data.dim; ++j) queries.values.push_back(row[j] + noise(random));
  }
  return queries;
}

// Scores agree within float rounding of the scale of the scores; ids agree wherever the scores
// around them are not tied within that rounding.
void ExpectSameNeighbours(const Neighbours& ours, const Neighbours& faiss, int k,
                          const std::string& what) {
  ASSERT_EQ(ours.ids.size(), faiss.ids.size());
  float scale = 1.0f;
  for (float s : faiss.scores) {
    if (std::isfinite(s) && std::abs(s) < 1e30f) scale = std::max(scale, std::abs(s));
  }
  const float tolerance = 1e-4f * scale;
  int differing_ids = 0;
  for (size_t i = 0; i < ours.ids.size(); ++i) {
    if (faiss.ids[i] < 0) {
      EXPECT_EQ(ours.ids[i], -1) << what << ", result " << i;
      continue;
    }
    EXPECT_NEAR(ours.scores[i], faiss.scores[i], tolerance) << what << ", result " << i;
    if (ours.ids[i] == faiss.ids[i]) continue;
    ++differing_ids;
    // A different id only where faiss has a near-tie at this rank.
    const size_t rank = i % k;
    const bool tie_before = rank > 0 && faiss.scores[i] - faiss.scores[i - 1] <= tolerance;
    const bool tie_after = rank + 1 < static_cast<size_t>(k) &&
                           std::abs(faiss.scores[i + 1] - faiss.scores[i]) <= tolerance;
    EXPECT_TRUE(tie_before || tie_after)
        << what << ", result " << i << ": id " << ours.ids[i] << " instead of " << faiss.ids[i];
  }
  EXPECT_LE(differing_ids, static_cast<int>(ours.ids.size() / 100)) << what;
}

// `index` in faiss's legacy "IvSQ" format, which its reader still reads: a list's ids and codes
// are two vectors of any lengths. With `short_list` >= 0 that list's codes lack one vector.
std::string LegacyIvsqBytes(const faiss::IndexIVFScalarQuantizer& index, int short_list) {
  std::string bytes = "IvSQ";
  auto put = [&](const auto& value) {
    bytes.append(reinterpret_cast<const char*>(&value), sizeof(value));
  };
  auto put_vector = [&](const auto* data, size_t count) {
    put(count);
    bytes.append(reinterpret_cast<const char*>(data), count * sizeof(*data));
  };
  put(index.d);
  put(index.ntotal);
  put(faiss::Index::idx_t{0});
  put(faiss::Index::idx_t{0});
  put(index.is_trained);
  put(index.metric_type);
  put(index.nlist);
  put(index.nprobe);
  faiss::VectorIOWriter quantizer;
  faiss::write_index(index.quantizer, &quantizer);
  bytes.append(quantizer.data.begin(), quantizer.data.end());
  auto& lists = dynamic_cast<const faiss::ArrayInvertedLists&>(*index.invlists);
  for (size_t list = 0; list < index.nlist; ++list) {
    put_vector(lists.ids[list].data(), lists.ids[list].size());
  }
  put(char{0});    // no direct map
  put(size_t{0});  // and its empty array
  put(index.sq.qtype);
  put(index.sq.rangestat);
  put(index.sq.rangestat_arg);
  put(index.sq.d);
  put(index.sq.code_size);
  put_vector(index.sq.trained.data(), index.sq.trained.size());
  put(index.code_size);
  for (size_t list = 0; list < index.nlist; ++list) {
    const size_t cut = static_cast<int>(list) == short_list ? index.code_size : 0;
    put_vector(lists.codes[list].data(), lists.codes[list].size() - cut);
  }
  return bytes;
}

class Sq8ScanTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    frames_ = new FrameMatrix(GenerateClusteredFrames(kRows, kDim, 40, 7));
  }
  static void TearDownTestSuite() { delete frames_; }

  // An IVF{kNlist},SQ8 index of frames_, built with faiss's API.
  static std::unique_ptr<faiss::IndexIVFScalarQuantizer> MakeSq8Index(
      faiss::MetricType metric, bool by_residual, faiss::ScalarQuantizer::QuantizerType type) {
    auto* quantizer = new faiss::IndexFlat(kDim, metric);
    auto index = std::make_unique<faiss::IndexIVFScalarQuantizer>(quantizer, kDim, kNlist, type,
                                                                  metric, by_residual);
    index->own_fields = true;
    index->train(frames_->rows, frames_->values.data());
    index->add(frames_->rows, frames_->values.data());
    return index;
  }

  // MakeSq8Index's index written to the scratch dir.
  std::string WriteSq8Index(faiss::MetricType metric, bool by_residual,
                            faiss::ScalarQuantizer::QuantizerType type) {
    const std::string path = scratch_.Join("sq8.index");
    faiss::write_index(MakeSq8Index(metric, by_residual, type).get(), path.c_str());
    return path;
  }

  static FrameMatrix* frames_;
  ScratchDir scratch_;
};

FrameMatrix* Sq8ScanTest::frames_ = nullptr;

TEST_F(Sq8ScanTest, FindsFaissNeighboursForEveryMetricCodingAndRange) {
  const FrameMatrix queries = QueriesNear(*frames_, 200, 3);
  for (faiss::MetricType metric : {faiss::METRIC_L2, faiss::METRIC_INNER_PRODUCT}) {
    for (bool by_residual : {true, false}) {
      for (auto type : {faiss::ScalarQuantizer::QT_8bit, faiss::ScalarQuantizer::QT_8bit_uniform}) {
        const std::string what = ::testing::PrintToString(std::make_tuple(
            metric == faiss::METRIC_L2 ? "L2" : "IP", by_residual ? "residual" : "direct",
            type == faiss::ScalarQuantizer::QT_8bit ? "8bit" : "8bit_uniform"));
        const std::string path = WriteSq8Index(metric, by_residual, type);
        absl::StatusOr<std::unique_ptr<FaissIndex>> index = FaissIndex::Load(path);
        ASSERT_TRUE(index.ok()) << index.status();
        ASSERT_TRUE((*index)->sq8_scan()) << what;
        for (int nprobe : {1, 3, kNlist}) {
          ExpectSameNeighbours(TimbreSearch(**index, queries, 8, nprobe),
                               FaissSearch(path, queries, 8, nprobe), 8,
                               what + ", nprobe " + std::to_string(nprobe));
        }
      }
    }
  }
}

TEST_F(Sq8ScanTest, ScoresOfThePrunedCoarseStepGiveTheSameNeighbours) {
  // Inner product on residual codes adds the coarse step's scores to the codes' products.
  const FrameMatrix queries = QueriesNear(*frames_, 100, 6);
  for (faiss::MetricType metric : {faiss::METRIC_L2, faiss::METRIC_INNER_PRODUCT}) {
    const std::string path = WriteSq8Index(metric, true, faiss::ScalarQuantizer::QT_8bit);
    absl::StatusOr<std::unique_ptr<FaissIndex>> index = FaissIndex::Load(path);
    ASSERT_TRUE(index.ok()) << index.status();
    ASSERT_TRUE((*index)->pruned_coarse_step());
    ExpectSameNeighbours(TimbreSearch(**index, queries, 8, 3), FaissSearch(path, queries, 8, 3), 8,
                         metric == faiss::METRIC_L2 ? "L2, pruned" : "IP, pruned");
  }
}

TEST_F(Sq8ScanTest, AnUnprunedSearchIsFaissOwnScan) {
  // SearchParams::unpruned leaves the lists to faiss, which decodes every code: L2 scores equal
  // faiss's own search bit for bit. Sq8Scan's differ from faiss's in float rounding (same
  // neighbours), which is what shows that the unpruned search did not use it.
  const FrameMatrix queries = QueriesNear(*frames_, 100, 9);
  const std::string path = WriteSq8Index(faiss::METRIC_L2, true, faiss::ScalarQuantizer::QT_8bit);
  absl::StatusOr<std::unique_ptr<FaissIndex>> index = FaissIndex::Load(path);
  ASSERT_TRUE(index.ok()) << index.status();
  ASSERT_TRUE((*index)->sq8_scan());
  for (int nprobe : {1, 3}) {
    const Neighbours faiss_own = FaissSearch(path, queries, 8, nprobe);
    const Neighbours unpruned = TimbreSearch(**index, queries, 8, nprobe, 0, /*unpruned=*/true);
    EXPECT_EQ(unpruned.ids, faiss_own.ids) << "nprobe " << nprobe;
    EXPECT_EQ(unpruned.scores, faiss_own.scores) << "nprobe " << nprobe;
    EXPECT_NE(TimbreSearch(**index, queries, 8, nprobe).scores, faiss_own.scores)
        << "nprobe " << nprobe;
  }
}

TEST_F(Sq8ScanTest, FilesWhoseCodesDoNotFitTheirListsOrQuantizerAreRefused) {
  std::unique_ptr<faiss::IndexIVFScalarQuantizer> index =
      MakeSq8Index(faiss::METRIC_L2, true, faiss::ScalarQuantizer::QT_8bit);
  // The legacy format as written loads; with list 3's codes one vector short it is refused.
  const std::string whole = scratch_.Join("legacy.index");
  WriteFile(whole, LegacyIvsqBytes(*index, -1));
  absl::StatusOr<std::unique_ptr<FaissIndex>> loaded = FaissIndex::Load(whole);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE((*loaded)->sq8_scan());
  const std::string cut = scratch_.Join("cut.index");
  WriteFile(cut, LegacyIvsqBytes(*index, 3));
  EXPECT_THAT(FaissIndex::Load(cut).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("list 3 holds")));
  // A scalar quantizer of other dimensions than the index's (faiss derives its code size).
  const std::string wide = scratch_.Join("wide.index");
  index->sq.d = kDim + 4;
  faiss::write_index(index.get(), wide.c_str());
  EXPECT_THAT(FaissIndex::Load(wide).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("scalar quantizer")));
}

TEST_F(Sq8ScanTest, MemoryMappedListsSearchAsLoadedOnes) {
  const std::string path = WriteSq8Index(faiss::METRIC_L2, true, faiss::ScalarQuantizer::QT_8bit);
  IndexLoadOptions mmap;
  mmap.mmap = true;
  absl::StatusOr<std::unique_ptr<FaissIndex>> mapped = FaissIndex::Load(path, mmap);
  absl::StatusOr<std::unique_ptr<FaissIndex>> loaded = FaissIndex::Load(path);
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_TRUE((*mapped)->sq8_scan());
  EXPECT_GT((*mapped)->mapped_bytes(), 0);
  const FrameMatrix queries = QueriesNear(*frames_, 50, 5);
  const Neighbours a = TimbreSearch(**mapped, queries, 8, 3);
  const Neighbours b = TimbreSearch(**loaded, queries, 8, 3);
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_EQ(a.scores, b.scores);
}

TEST_F(Sq8ScanTest, ListsShorterThanKLeaveMissingNeighbours) {
  const std::string path = WriteSq8Index(faiss::METRIC_L2, true, faiss::ScalarQuantizer::QT_8bit);
  absl::StatusOr<std::unique_ptr<FaissIndex>> index = FaissIndex::Load(path);
  ASSERT_TRUE(index.ok()) << index.status();
  const FrameMatrix queries = QueriesNear(*frames_, 20, 9);
  constexpr int kK = 2000;  // more than any one list holds (3000 rows in 12 lists)
  const Neighbours ours = TimbreSearch(**index, queries, kK, 1);
  EXPECT_EQ(ours.ids.back(), -1);
  ExpectSameNeighbours(ours, FaissSearch(path, queries, kK, 1), kK, "one list, k 2000");
}

TEST_F(Sq8ScanTest, BehindAPcaWithReRankingReachesTheExactNeighbours) {
  std::unique_ptr<FaissIndex> index = TrainOrDie("PCA12,IVF8,SQ8,RFlat", Metric::kL2, *frames_);
  ASSERT_NE(index, nullptr);
  ASSERT_TRUE(index->sq8_scan());
  const FrameMatrix queries = QueriesNear(*frames_, 40, 11);
  constexpr int kK = 6;
  // Every list and every candidate re-ranked: the exact neighbours, by the refine index's scores.
  const Neighbours all = TimbreSearch(*index, queries, kK, 8, /*k_factor=*/500);
  for (int64_t q = 0; q < queries.rows; ++q) {
    std::vector<std::pair<float, int64_t>> exact;
    for (int64_t id = 0; id < frames_->rows; ++id) {
      float distance = 0.0f;
      for (int j = 0; j < kDim; ++j) {
        const float delta = queries.row(q)[j] - frames_->row(id)[j];
        distance += delta * delta;
      }
      exact.emplace_back(distance, id);
    }
    std::partial_sort(exact.begin(), exact.begin() + kK, exact.end());
    for (int r = 0; r < kK; ++r) {
      EXPECT_NEAR(all.scores[q * kK + r], exact[r].first, 1e-3f * exact[r].first + 1e-4f)
          << "query " << q << ", rank " << r;
    }
  }
}

TEST_F(Sq8ScanTest, MemoryOfTheNormsIsCounted) {
  const std::string path = WriteSq8Index(faiss::METRIC_L2, true, faiss::ScalarQuantizer::QT_8bit);
  IndexLoadOptions options;
  options.prune_coarse_step = false;  // no pruned coarse step: nothing else of timbre's counted
  absl::StatusOr<std::unique_ptr<FaissIndex>> index = FaissIndex::Load(path, options);
  ASSERT_TRUE(index.ok()) << index.status();
  // faiss's part: the centroids, and per row its code (kDim bytes) and id. timbre's: the
  // centroids' norms, per row a pointer and the reconstruction StoredVector returns.
  const int64_t without_scan =
      kNlist * kDim * 4 + kRows * (kDim + 8) + kNlist * 4 + kRows * (8 + kDim * 4);
  // The scan adds a norm per row.
  EXPECT_GE((*index)->memory_bytes(), without_scan + kRows * 4);
}

TEST_F(Sq8ScanTest, OtherCodesAreScannedByFaiss) {
  for (const char* description : {"IVF8,SQ4", "IVF8,SQfp16", "IVF8,Flat"}) {
    std::unique_ptr<FaissIndex> index = TrainOrDie(description, Metric::kL2, *frames_);
    ASSERT_NE(index, nullptr) << description;
    EXPECT_FALSE(index->sq8_scan()) << description;
  }
}

}  // namespace
}  // namespace timbre
