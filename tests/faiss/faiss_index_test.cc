#include "server/faiss/faiss_index.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/build/demo_speaker.h"
#include "server/io/vectors_file.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::AllOf;
using ::testing::Each;
using ::testing::HasSubstr;
using ::testing::Not;
using ::timbre::testing::FakeBuildControl;
using ::timbre::testing::IsOk;
using ::timbre::testing::ReadFile;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;
using ::timbre::testing::TrainOrDie;
using ::timbre::testing::WriteFile;
using ::timbre::testing::WriteRvcIndex;

constexpr int kDim = 16;
constexpr int kRows = 400;
constexpr int kNlist = 8;

// Stored rows with a little noise, then a few random points: queries near and far from the data.
FrameMatrix Queries(const FrameMatrix& data, int64_t count, uint32_t seed) {
  std::mt19937 random(seed);
  std::normal_distribution<float> noise(0.0f, 0.2f);
  std::uniform_int_distribution<int64_t> pick(0, data.rows - 1);
  FrameMatrix queries;
  queries.rows = count;
  queries.dim = data.dim;
  queries.values.resize(count * data.dim);
  for (int64_t i = 0; i < count; ++i) {
    const float* base = data.row(pick(random));
    for (int c = 0; c < data.dim; ++c) {
      queries.row(i)[c] = (i % 5 == 4 ? 0.0f : base[c]) + (i % 5 == 4 ? 5 : 1) * noise(random);
    }
  }
  return queries;
}

struct Neighbours {
  std::vector<float> scores;
  std::vector<int64_t> ids;
};

Neighbours SearchOrDie(const FaissIndex& index, const FrameMatrix& queries, int k, int nprobe,
                       int threads = 1, int k_factor = 0, bool unpruned = false) {
  Neighbours result;
  result.scores.resize(queries.rows * k);
  result.ids.resize(queries.rows * k);
  SearchParams params;
  params.k = k;
  params.nprobe = nprobe;
  params.k_factor = k_factor;
  params.unpruned = unpruned;
  EXPECT_THAT(index.Search(queries.values.data(), queries.rows, params, threads,
                           result.scores.data(), result.ids.data()),
              IsOk());
  return result;
}

// Exact k-NN in double precision: for L2 the k smallest squared distances, for inner product the
// k largest products.
struct Exact {
  std::vector<double> scores;  // [rows, k], best first
  std::vector<int64_t> ids;
};

double Score(const float* a, const float* b, int dim, Metric metric) {
  double sum = 0.0;
  for (int c = 0; c < dim; ++c) {
    sum += metric == Metric::kL2 ? (static_cast<double>(a[c]) - b[c]) * (a[c] - b[c])
                                 : static_cast<double>(a[c]) * b[c];
  }
  return sum;
}

Exact BruteForce(const FrameMatrix& data, const FrameMatrix& queries, int k, Metric metric) {
  Exact exact;
  std::vector<int64_t> order(data.rows);
  std::vector<double> scores(data.rows);
  for (int64_t q = 0; q < queries.rows; ++q) {
    for (int64_t i = 0; i < data.rows; ++i) {
      scores[i] = Score(queries.row(q), data.row(i), data.dim, metric);
    }
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
      return metric == Metric::kL2 ? scores[a] < scores[b] : scores[a] > scores[b];
    });
    for (int j = 0; j < k; ++j) {
      exact.ids.push_back(order[j]);
      exact.scores.push_back(scores[order[j]]);
    }
  }
  return exact;
}

bool Close(double a, double b, double relative) {
  return std::abs(a - b) <= relative * std::max({1.0, std::abs(a), std::abs(b)});
}

// faiss's result equals the exact one: rank-wise scores agree, each returned id really has its
// score, and ids agree wherever the exact ranking has no near-tie.
void ExpectExact(const Neighbours& got, const Exact& want, const FrameMatrix& data,
                 const FrameMatrix& queries, int k, Metric metric) {
  ASSERT_EQ(got.ids.size(), want.ids.size());
  for (int64_t q = 0; q < queries.rows; ++q) {
    for (int j = 0; j < k; ++j) {
      const size_t at = q * k + j;
      SCOPED_TRACE(::testing::Message() << "query " << q << " rank " << j);
      ASSERT_GE(got.ids[at], 0);
      ASSERT_LT(got.ids[at], data.rows);
      EXPECT_TRUE(Close(got.scores[at], want.scores[at], 1e-3))
          << got.scores[at] << " vs " << want.scores[at];
      EXPECT_TRUE(Close(got.scores[at],
                        Score(queries.row(q), data.row(got.ids[at]), data.dim, metric), 1e-3));
      const bool tie_before = j > 0 && Close(want.scores[at - 1], want.scores[at], 1e-4);
      const bool tie_after = j + 1 < k && Close(want.scores[at + 1], want.scores[at], 1e-4);
      if (!tie_before && !tie_after) {
        EXPECT_EQ(got.ids[at], want.ids[at]);
      }
    }
  }
}

class FaissIndexTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    frames_ = new FrameMatrix(GenerateClusteredFrames(kRows, kDim, 8, 5));
    pq_frames_ = new FrameMatrix(GenerateClusteredFrames(kPqRows, kDim, 8, 11));
  }
  static void TearDownTestSuite() {
    delete frames_;
    delete pq_frames_;
  }

  // Writes `index` to the scratch directory and loads it back.
  std::unique_ptr<FaissIndex> WriteAndLoad(const FaissIndex& index, const IndexLoadOptions& options = {}) {
    const std::string path = scratch_.Join("written.index");
    EXPECT_THAT(index.Write(path), IsOk());
    auto loaded = FaissIndex::Load(path, options);
    EXPECT_THAT(loaded, IsOk());
    return loaded.ok() ? *std::move(loaded) : nullptr;
  }

  static FrameMatrix* frames_;
  // Enough rows to train 4-bit PQ codes (16 centroids per sub-quantizer) without warnings.
  static constexpr int64_t kPqRows = 1200;
  static FrameMatrix* pq_frames_;
  ScratchDir scratch_;
};

FrameMatrix* FaissIndexTest::frames_ = nullptr;
FrameMatrix* FaissIndexTest::pq_frames_ = nullptr;

// A search result as the expectation of ExpectExact.
Exact AsExact(const Neighbours& neighbours) {
  Exact exact;
  exact.scores.assign(neighbours.scores.begin(), neighbours.scores.end());
  exact.ids = neighbours.ids;
  return exact;
}

TEST_F(FaissIndexTest, LoadMissingFileIsNotFound) {
  const std::string path = scratch_.Join("missing.index");
  EXPECT_THAT(FaissIndex::Load(path), StatusIs(absl::StatusCode::kNotFound, HasSubstr(path)));
}

TEST_F(FaissIndexTest, LoadTextFileIsInvalidArgument) {
  const std::string path = scratch_.Join("text.index");
  WriteFile(path, "this is not a faiss index, just some text\n");
  EXPECT_THAT(FaissIndex::Load(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path), HasSubstr("not a readable faiss index"))));
}

TEST_F(FaissIndexTest, LoadEmptyFileIsInvalidArgument) {
  const std::string path = scratch_.Join("empty.index");
  WriteFile(path, "");
  EXPECT_THAT(FaissIndex::Load(path),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(path)));
}

TEST_F(FaissIndexTest, LoadDirectoryIsInvalidArgument) {
  EXPECT_THAT(FaissIndex::Load(scratch_.path()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(scratch_.path())));
}

TEST_F(FaissIndexTest, LoadFifoOrDeviceIsInvalidArgumentWithoutWaiting) {
  // Before, faiss's reader waited for ever on a FIFO named as a version's index file.
  const std::string fifo = scratch_.Join("fifo.index");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_THAT(FaissIndex::Load(fifo),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(fifo), HasSubstr("not a regular file"))));
  EXPECT_THAT(FaissIndex::Load("/dev/zero"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a regular file")));
}

TEST_F(FaissIndexTest, IvfIndexClaimingMoreVectorsThanItsListsHoldIsRefusedWithoutAllocating) {
  // Found by the faiss_index fuzzer: a 2.8 KB IVF file whose ntotal field said 176 billion made
  // the id check allocate ntotal / 8 bytes (22 GB) before looking at the lists.
  std::vector<float> rows(64 * 8);
  std::mt19937 random(5);
  std::normal_distribution<float> normal;
  for (float& value : rows) value = normal(random);
  TrainOptions options;
  options.description = "IVF2,Flat";
  auto index = FaissIndex::Train(options, rows.data(), 64, 8);
  ASSERT_THAT(index, IsOk());
  const std::string path = scratch_.Join("claims.index");
  ASSERT_THAT((*index)->Write(path), IsOk());
  std::string bytes = ReadFile(path);
  if (bytes.compare(0, 4, "IwFl") != 0) GTEST_SKIP() << "unexpected IndexIVFFlat layout";
  const int64_t claimed = int64_t{1} << 40;  // "IwFl", d (int32), then ntotal (int64)
  std::memcpy(bytes.data() + 8, &claimed, sizeof(claimed));
  WriteFile(path, bytes);
  EXPECT_THAT(FaissIndex::Load(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path), HasSubstr("inverted lists hold 64"))));
}

// faiss's reader takes each part's dimensions from the file and checks a transform's matrix
// against them before it has read them: a file whose parts do not fit together loaded, and a
// search through it read past the matrix.
TEST_F(FaissIndexTest, IndexWhosePartsDoNotFitTogetherIsRefused) {
  std::vector<float> rows(64 * 8);
  std::mt19937 random(5);
  std::normal_distribution<float> normal;
  for (float& value : rows) value = normal(random);
  auto write = [&](const std::string& description) {
    TrainOptions options;
    options.description = description;
    auto index = FaissIndex::Train(options, rows.data(), 64, 8);
    EXPECT_THAT(index, IsOk());
    const std::string path = scratch_.Join(description + ".index");
    EXPECT_THAT((*index)->Write(path), IsOk());
    EXPECT_THAT(FaissIndex::Load(path), IsOk());
    return path;
  };
  auto patched = [&](const std::string& path, size_t offset, auto value) {
    std::string bytes = ReadFile(path);
    std::memcpy(bytes.data() + offset, &value, sizeof(value));
    const std::string out = path + ".patched";
    WriteFile(out, bytes);
    return out;
  };
  auto field = [](const std::string& bytes, size_t offset, auto* value) {
    std::memcpy(value, bytes.data() + offset, sizeof(*value));
  };

  // "PCA4,IVF2,Flat": the PCA's d_in, d_out (int32) and is_trained (1 byte) come just before the
  // IVF index's fourcc.
  const std::string pca = write("PCA4,IVF2,Flat");
  const std::string pca_bytes = ReadFile(pca);
  const size_t ivf = pca_bytes.find("IwFl");
  int32_t d_in = 0, d_out = 0;
  ASSERT_NE(ivf, std::string::npos);
  field(pca_bytes, ivf - 9, &d_in);
  field(pca_bytes, ivf - 5, &d_out);
  if (d_in != 8 || d_out != 4) GTEST_SKIP() << "unexpected IndexPreTransform layout";
  EXPECT_THAT(FaissIndex::Load(patched(pca, ivf - 5, int32_t{8})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("PCA"), HasSubstr("maps 8 to 8 dimensions"),
                             HasSubstr("32-value matrix"))));
  EXPECT_THAT(FaissIndex::Load(patched(pca, ivf - 9, int32_t{4})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("after 8")));

  // "IVF2,Flat": a quantizer of 1 centroid of 16 dimensions holds as many floats as the 2 of 8
  // the lists need, so faiss reads it.
  const std::string plain = write("IVF2,Flat");
  const std::string plain_bytes = ReadFile(plain);
  const size_t quantizer = plain_bytes.find("IxF2");
  ASSERT_NE(quantizer, std::string::npos);
  int32_t quantizer_d = 0;
  field(plain_bytes, quantizer + 4, &quantizer_d);
  if (quantizer_d != 8) GTEST_SKIP() << "unexpected IndexFlat layout";
  std::string bytes = plain_bytes;
  const int32_t wide = 16;
  const int64_t one = 1;
  std::memcpy(bytes.data() + quantizer + 4, &wide, sizeof(wide));
  std::memcpy(bytes.data() + quantizer + 8, &one, sizeof(one));
  const std::string mismatched = scratch_.Join("quantizer.index");
  WriteFile(mismatched, bytes);
  EXPECT_THAT(FaissIndex::Load(mismatched),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(mismatched), HasSubstr("coarse quantizer"),
                             HasSubstr("1 centroids of 16"))));
}

TEST_F(FaissIndexTest, LoadTruncatedIndexIsInvalidArgument) {
  const std::string whole = scratch_.Join("whole.index");
  WriteRvcIndex(*frames_, kNlist, whole);
  const std::string bytes = ReadFile(whole);
  ASSERT_GT(bytes.size(), 1000u);
  const std::string half = scratch_.Join("half.index");
  WriteFile(half, bytes.substr(0, bytes.size() / 2));
  EXPECT_THAT(FaissIndex::Load(half),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(half)));
  // Losing only the last byte is caught too.
  const std::string almost = scratch_.Join("almost.index");
  WriteFile(almost, bytes.substr(0, bytes.size() - 1));
  EXPECT_THAT(FaissIndex::Load(almost),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(almost)));
  EXPECT_THAT(FaissIndex::Load(whole), IsOk());
}

TEST_F(FaissIndexTest, LoadRandomBytesIsInvalidArgument) {
  std::mt19937 random(99);
  for (int size : {3, 64, 4096}) {
    std::string bytes(size, '\0');
    for (char& byte : bytes) byte = static_cast<char>(random());
    const std::string path = scratch_.Join("random.index");
    WriteFile(path, bytes);
    EXPECT_THAT(FaissIndex::Load(path),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(path)))
        << size << " bytes";
  }
}

// A flat index file without vectors, made by editing a one-vector "Flat" file. The layout of
// faiss 1.7's IndexFlat: "IxF2", d (int32), ntotal (int64), two int64 dummies, is_trained (1 byte),
// metric (int32), then the code bytes as a count of floats (uint64) and the floats.
TEST_F(FaissIndexTest, LoadIndexWithoutVectorsIsInvalidArgument) {
  const std::vector<float> one = {1.0f, 2.0f, 3.0f, 4.0f};
  TrainOptions options;
  options.description = "Flat";
  auto index = FaissIndex::Train(options, one.data(), 1, 4);
  ASSERT_THAT(index, IsOk());
  const std::string one_path = scratch_.Join("one.index");
  ASSERT_THAT((*index)->Write(one_path), IsOk());
  std::string bytes = ReadFile(one_path);
  int64_t ntotal = 0;
  uint64_t floats = 0;
  if (bytes.size() != 61 || bytes.compare(0, 4, "IxF2") != 0) {
    GTEST_SKIP() << "unexpected IndexFlat layout in this faiss version";
  }
  std::memcpy(&ntotal, bytes.data() + 8, 8);
  std::memcpy(&floats, bytes.data() + 37, 8);
  if (ntotal != 1 || floats != 4) GTEST_SKIP() << "unexpected IndexFlat layout";

  ntotal = 0;
  floats = 0;
  std::memcpy(bytes.data() + 8, &ntotal, 8);
  std::memcpy(bytes.data() + 37, &floats, 8);
  bytes.resize(45);
  const std::string empty_path = scratch_.Join("trained_empty.index");
  WriteFile(empty_path, bytes);
  EXPECT_THAT(
      FaissIndex::Load(empty_path),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr(empty_path), HasSubstr("no vectors"), HasSubstr("trained_"))));
}

TEST(FaissIndexImbalanceTest, IsFaissImbalanceFactorOfTheListSizes) {
  // Two far-apart groups of 90 and 10 rows: IVF2 puts each group in a list of its own, so the
  // factor is 2 * (90^2 + 10^2) / 100^2.
  constexpr int kDimension = 4;
  FrameMatrix rows;
  rows.rows = 100;
  rows.dim = kDimension;
  rows.values.resize(rows.rows * kDimension);
  for (int64_t r = 0; r < rows.rows; ++r) {
    const float centre = r < 90 ? 0.0f : 100.0f;
    for (int c = 0; c < kDimension; ++c) {
      rows.values[r * kDimension + c] = centre + 0.01f * static_cast<float>((r * 7 + c) % 5);
    }
  }
  std::unique_ptr<FaissIndex> ivf = TrainOrDie("IVF2,Flat", Metric::kL2, rows);
  ASSERT_NE(ivf, nullptr);
  EXPECT_NEAR(ivf->list_imbalance(), 2.0 * (90 * 90 + 10 * 10) / (100.0 * 100.0), 1e-9);
  std::unique_ptr<FaissIndex> flat = TrainOrDie("Flat", Metric::kL2, rows);
  ASSERT_NE(flat, nullptr);
  EXPECT_EQ(flat->list_imbalance(), 0.0);
}

TEST_F(FaissIndexTest, TrainWriteLoadRoundTrip) {
  std::unique_ptr<FaissIndex> trained = TrainOrDie("IVF8,Flat", Metric::kL2, *frames_);
  ASSERT_NE(trained, nullptr);
  const std::string path = scratch_.Join("added.index");
  ASSERT_THAT(trained->Write(path), IsOk());
  auto loaded = FaissIndex::Load(path);
  ASSERT_THAT(loaded, IsOk());
  for (const FaissIndex* index : {trained.get(), loaded->get()}) {
    EXPECT_EQ(index->dim(), kDim);
    EXPECT_EQ(index->size(), kRows);
    EXPECT_EQ(index->description(), "IVF8,Flat");
    EXPECT_EQ(index->nprobe(), 1);
    EXPECT_EQ(index->nlist(), kNlist);
    EXPECT_EQ(index->metric(), Metric::kL2);
    EXPECT_GT(index->memory_bytes(), int64_t{kRows} * kDim * 4);
    // IVF-Flat keeps the raw floats; ids are the order the vectors were added in.
    for (int64_t id = 0; id < kRows; ++id) {
      ASSERT_EQ(std::memcmp(index->StoredVector(id), frames_->row(id), kDim * sizeof(float)), 0)
          << "id " << id;
    }
  }
  // Both search alike.
  const FrameMatrix queries = Queries(*frames_, 30, 1);
  const Neighbours a = SearchOrDie(*trained, queries, 6, 0);
  const Neighbours b = SearchOrDie(**loaded, queries, 6, 0);
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_EQ(a.scores, b.scores);
}

TEST_F(FaissIndexTest, MemoryMappedIvfSearchesAsTheLoadedOne) {
  const std::string path = scratch_.Join("added.index");
  WriteRvcIndex(*frames_, kNlist, path);
  IndexLoadOptions mmap;
  mmap.mmap = true;
  auto mapped = FaissIndex::Load(path, mmap);
  ASSERT_THAT(mapped, IsOk());
  auto loaded = FaissIndex::Load(path);
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ((*mapped)->size(), kRows);
  EXPECT_EQ((*mapped)->description(), "IVF8,Flat");
  // The lists are mapped, not in the heap: the mapping is the whole file.
  EXPECT_EQ((*mapped)->mapped_bytes(), static_cast<int64_t>(ReadFile(path).size()));
  EXPECT_EQ((*loaded)->mapped_bytes(), 0);
  EXPECT_LT((*mapped)->memory_bytes(), int64_t{kRows} * kDim * 4);
  for (int64_t id = 0; id < kRows; ++id) {
    ASSERT_EQ(std::memcmp((*mapped)->StoredVector(id), frames_->row(id), kDim * sizeof(float)), 0)
        << "id " << id;
  }
  const FrameMatrix queries = Queries(*frames_, 30, 3);
  for (int nprobe : {0, kNlist}) {
    const Neighbours a = SearchOrDie(**mapped, queries, 6, nprobe);
    const Neighbours b = SearchOrDie(**loaded, queries, 6, nprobe);
    EXPECT_EQ(a.ids, b.ids) << "nprobe " << nprobe;
    EXPECT_EQ(a.scores, b.scores) << "nprobe " << nprobe;
  }
}

TEST_F(FaissIndexTest, MemoryMappedTruncatedFileIsInvalidArgument) {
  const std::string whole = scratch_.Join("whole.index");
  WriteRvcIndex(*frames_, kNlist, whole);
  const std::string bytes = ReadFile(whole);
  const std::string almost = scratch_.Join("almost.index");
  WriteFile(almost, bytes.substr(0, bytes.size() - 1));
  IndexLoadOptions mmap;
  mmap.mmap = true;
  EXPECT_THAT(FaissIndex::Load(almost, mmap),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(almost), HasSubstr("truncated"))));
}

TEST_F(FaissIndexTest, MemoryMappingAFlatIndexReadsItAsUsual) {
  std::unique_ptr<FaissIndex> flat = TrainOrDie("Flat", Metric::kL2, *frames_);
  ASSERT_NE(flat, nullptr);
  const std::string path = scratch_.Join("flat.index");
  ASSERT_THAT(flat->Write(path), IsOk());
  IndexLoadOptions mmap;
  mmap.mmap = true;
  auto loaded = FaissIndex::Load(path, mmap);
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ((*loaded)->mapped_bytes(), 0);
  EXPECT_GE((*loaded)->memory_bytes(), int64_t{kRows} * kDim * 4);
}

TEST_F(FaissIndexTest, TrainKeepsNprobeAndAddsInBatches) {
  TrainOptions options;
  options.description = "IVF8,Flat";
  options.nprobe = 3;
  options.add_batch = 7;  // many small add() calls must still give ids in order
  auto index = FaissIndex::Train(options, frames_->values.data(), frames_->rows, kDim);
  ASSERT_THAT(index, IsOk());
  EXPECT_EQ((*index)->nprobe(), 3);
  EXPECT_EQ((*index)->size(), kRows);
  for (int64_t id = 0; id < kRows; ++id) {
    ASSERT_EQ(std::memcmp((*index)->StoredVector(id), frames_->row(id), kDim * sizeof(float)), 0);
  }
}

TEST_F(FaissIndexTest, SearchWithAllListsEqualsBruteForce) {
  std::unique_ptr<FaissIndex> index = TrainOrDie("IVF8,Flat", Metric::kL2, *frames_);
  ASSERT_NE(index, nullptr);
  const FrameMatrix queries = Queries(*frames_, 60, 2);
  constexpr int kK = 10;
  const Neighbours got = SearchOrDie(*index, queries, kK, kNlist);
  ExpectExact(got, BruteForce(*frames_, queries, kK, Metric::kL2), *frames_, queries, kK,
              Metric::kL2);
}

TEST_F(FaissIndexTest, NprobeZeroUsesTheStoredNprobe) {
  std::unique_ptr<FaissIndex> index = TrainOrDie("IVF8,Flat", Metric::kL2, *frames_);
  ASSERT_NE(index, nullptr);
  const FrameMatrix queries = Queries(*frames_, 40, 3);
  const Neighbours stored = SearchOrDie(*index, queries, 5, 0);
  const Neighbours one = SearchOrDie(*index, queries, 5, 1);
  EXPECT_EQ(stored.ids, one.ids);
  EXPECT_EQ(stored.scores, one.scores);
  // With one list probed, results are sorted and every returned vector is a real neighbour.
  for (int64_t q = 0; q < queries.rows; ++q) {
    for (int j = 0; j < 5; ++j) {
      const int64_t id = one.ids[q * 5 + j];
      if (id < 0) continue;
      EXPECT_TRUE(Close(one.scores[q * 5 + j],
                        Score(queries.row(q), frames_->row(id), kDim, Metric::kL2), 1e-3));
      if (j > 0 && one.ids[q * 5 + j - 1] >= 0) {
        EXPECT_LE(one.scores[q * 5 + j - 1], one.scores[q * 5 + j]);
      }
    }
  }
}

TEST_F(FaissIndexTest, MissingNeighboursAreMarked) {
  const FrameMatrix few = GenerateClusteredFrames(5, 4, 2, 8);
  std::unique_ptr<FaissIndex> index = TrainOrDie("Flat", Metric::kL2, few);
  ASSERT_NE(index, nullptr);
  const Neighbours got = SearchOrDie(*index, few, 7, 0);
  for (int64_t q = 0; q < few.rows; ++q) {
    EXPECT_EQ(got.ids[q * 7], q);  // each stored vector is its own nearest
    EXPECT_EQ(got.scores[q * 7], 0.0f);
    EXPECT_EQ(got.ids[q * 7 + 5], kNoNeighbour);
    EXPECT_EQ(got.ids[q * 7 + 6], kNoNeighbour);
  }
}

TEST_F(FaissIndexTest, ThreadedCoarseStepGivesIdenticalResults) {
  // 128 lists so that scoring every centroid is really split (one shard per 64 lists).
  const FrameMatrix data = GenerateClusteredFrames(5000, kDim, 64, 6);
  std::unique_ptr<FaissIndex> index = TrainOrDie("IVF128,Flat", Metric::kL2, data);
  ASSERT_NE(index, nullptr);
  ASSERT_EQ(index->nlist(), 128);
  const FrameMatrix queries = Queries(data, 300, 4);  // more than one 256-query block
  const FrameMatrix one_query = Queries(data, 1, 7);
  for (int nprobe : {1, 4}) {
    // The pruned coarse step splits its queries into chunks.
    std::vector<int64_t> one(queries.rows * nprobe), two(queries.rows * nprobe);
    ASSERT_THAT(index->CoarseLists(queries.values.data(), queries.rows, nprobe, 1, one.data()),
                IsOk());
    ASSERT_THAT(index->CoarseLists(queries.values.data(), queries.rows, nprobe, 2, two.data()),
                IsOk());
    EXPECT_EQ(one, two) << "nprobe " << nprobe;
    // A single query is not split by queries; scoring every centroid splits it by centroid range.
    const Neighbours alone = SearchOrDie(*index, one_query, 8, nprobe, 1, 0, /*unpruned=*/true);
    const Neighbours split = SearchOrDie(*index, one_query, 8, nprobe, 2, 0, /*unpruned=*/true);
    EXPECT_EQ(alone.ids, split.ids) << "nprobe " << nprobe;
    EXPECT_EQ(alone.scores, split.scores) << "nprobe " << nprobe;
  }
}

TEST_F(FaissIndexTest, ThreadedSearchSplitsQueriesWithIdenticalResults) {
  // Each thread takes a share of the queries through the whole search: the list scans (timbre's
  // IVF-Flat and SQ8 scans) and the re-ranking as well as the coarse step. Odd counts leave
  // unequal shares; one query cannot be split.
  const FrameMatrix data = GenerateClusteredFrames(3000, kDim, 32, 8);
  for (const char* description : {"IVF32,Flat", "PCA16,IVF32,SQ8,RFlat"}) {
    for (Metric metric : {Metric::kL2, Metric::kInnerProduct}) {
      std::unique_ptr<FaissIndex> index = TrainOrDie(description, metric, data);
      ASSERT_NE(index, nullptr) << description;
      EXPECT_TRUE(index->pruned_coarse_step()) << description;
      EXPECT_TRUE(index->pruned_list_scan() || index->sq8_scan()) << description;
      for (int64_t count : {1, 3, 16, 17}) {
        const FrameMatrix queries = Queries(data, count, 9);
        for (bool unpruned : {false, true}) {
          const std::string what =
              absl::StrCat(description, ", ", count, " queries", unpruned ? ", unpruned" : "");
          const Neighbours one = SearchOrDie(*index, queries, 8, 4, 1, 0, unpruned);
          for (int threads : {2, 3, 64}) {
            const Neighbours many = SearchOrDie(*index, queries, 8, 4, threads, 0, unpruned);
            EXPECT_EQ(one.ids, many.ids) << what << ", " << threads << " threads";
            EXPECT_EQ(one.scores, many.scores) << what << ", " << threads << " threads";
          }
          EXPECT_THAT(one.ids, Each(::testing::Ge(0))) << what;
        }
      }
    }
  }
}

TEST_F(FaissIndexTest, UnprunedSearchFindsTheSameNeighbours) {
  // Without the pruned coarse step and list scans: every centroid scored and faiss's scan. Exact
  // IVF-Flat gives the same result bit for bit; SQ8 the same up to float rounding (faiss decodes
  // every code, Sq8Scan weighs them), so there the scores are compared rank by rank.
  const FrameMatrix data = GenerateClusteredFrames(3000, kDim, 32, 8);
  const FrameMatrix queries = Queries(data, 40, 11);
  for (const char* description : {"IVF32,Flat", "PCA16,IVF32,SQ8,RFlat", "IVF32,SQ8"}) {
    for (Metric metric : {Metric::kL2, Metric::kInnerProduct}) {
      std::unique_ptr<FaissIndex> index = TrainOrDie(description, metric, data);
      ASSERT_NE(index, nullptr) << description;
      for (int nprobe : {1, 4}) {
        const Neighbours pruned = SearchOrDie(*index, queries, 8, nprobe);
        const Neighbours unpruned =
            SearchOrDie(*index, queries, 8, nprobe, 1, 0, /*unpruned=*/true);
        const std::string what = absl::StrCat(description, ", nprobe ", nprobe);
        if (std::string(description) == "IVF32,Flat") {
          EXPECT_EQ(pruned.ids, unpruned.ids) << what;
          EXPECT_EQ(pruned.scores, unpruned.scores) << what;
        } else {
          for (size_t i = 0; i < pruned.scores.size(); ++i) {
            EXPECT_NEAR(pruned.scores[i], unpruned.scores[i],
                        1e-4f * (1.0f + std::abs(unpruned.scores[i])))
                << what << ", rank " << i;
          }
        }
      }
    }
  }
}

TEST_F(FaissIndexTest, BadFactoryStringIsInvalidArgument) {
  TrainOptions options;
  options.description = "NotAnIndex,Flat";
  // faiss's reason, without its "Error in <function> at <file>:<line>" prefix.
  EXPECT_THAT(FaissIndex::Train(options, frames_->values.data(), frames_->rows, kDim),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("NotAnIndex,Flat"), HasSubstr("could not parse"),
                             Not(HasSubstr("Error in")), Not(HasSubstr(".cpp:")))));
}

TEST_F(FaissIndexTest, BadTrainOptionsAreInvalidArgument) {
  for (auto change : std::vector<std::function<void(TrainOptions&)>>{
           [](TrainOptions& o) { o.nprobe = 0; }, [](TrainOptions& o) { o.add_batch = 0; },
           [](TrainOptions& o) { o.k_factor = -1; }}) {
    TrainOptions options;
    options.description = "IVF8,Flat";
    change(options);
    EXPECT_THAT(FaissIndex::Train(options, frames_->values.data(), frames_->rows, kDim),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("IVF8,Flat")));
  }
}

TEST_F(FaissIndexTest, TooFewTrainingVectorsIsInvalidArgument) {
  TrainOptions options;
  options.description = "IVF64,Flat";
  EXPECT_THAT(FaissIndex::Train(options, frames_->values.data(), 20, kDim),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("IVF64,Flat"), HasSubstr("20 vectors"))));
}

TEST_F(FaissIndexTest, WriteToMissingDirectoryIsInternal) {
  std::unique_ptr<FaissIndex> index = TrainOrDie("Flat", Metric::kL2, *frames_);
  ASSERT_NE(index, nullptr);
  const std::string path = scratch_.Join("no/such/dir/index.faiss");
  EXPECT_THAT(index->Write(path), StatusIs(absl::StatusCode::kInternal, HasSubstr(path)));
}

TEST_F(FaissIndexTest, FlatL2IndexDescribesItself) {
  std::unique_ptr<FaissIndex> index = TrainOrDie("Flat", Metric::kL2, *frames_);
  ASSERT_NE(index, nullptr);
  EXPECT_EQ(index->description(), "Flat");
  EXPECT_EQ(index->nprobe(), 0);
  EXPECT_EQ(index->nlist(), 0);
  EXPECT_GE(index->memory_bytes(), int64_t{kRows} * kDim * 4);
  const FrameMatrix queries = Queries(*frames_, 20, 6);
  ExpectExact(SearchOrDie(*index, queries, 5, 0), BruteForce(*frames_, queries, 5, Metric::kL2),
              *frames_, queries, 5, Metric::kL2);
}

class InnerProductTest : public FaissIndexTest,
                         public ::testing::WithParamInterface<const char*> {};

TEST_P(InnerProductTest, StoresExactVectorsAndSearchesExactly) {
  std::unique_ptr<FaissIndex> index = TrainOrDie(GetParam(), Metric::kInnerProduct, *frames_);
  ASSERT_NE(index, nullptr);
  EXPECT_EQ(index->metric(), Metric::kInnerProduct);
  EXPECT_EQ(index->description(), GetParam());
  EXPECT_EQ(index->size(), kRows);
  for (int64_t id = 0; id < kRows; ++id) {
    ASSERT_EQ(std::memcmp(index->StoredVector(id), frames_->row(id), kDim * sizeof(float)), 0);
  }
  const FrameMatrix queries = Queries(*frames_, 30, 7);
  const int nprobe = index->nlist();  // all lists, or 0 for Flat
  ExpectExact(SearchOrDie(*index, queries, 6, nprobe),
              BruteForce(*frames_, queries, 6, Metric::kInnerProduct), *frames_, queries, 6,
              Metric::kInnerProduct);
  // Survives a write and a load.
  const std::string path = scratch_.Join("ip.index");
  ASSERT_THAT(index->Write(path), IsOk());
  auto loaded = FaissIndex::Load(path);
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ((*loaded)->metric(), Metric::kInnerProduct);
  EXPECT_EQ(std::memcmp((*loaded)->StoredVector(kRows - 1), frames_->row(kRows - 1),
                        kDim * sizeof(float)),
            0);
}

INSTANTIATE_TEST_SUITE_P(Recipes, InnerProductTest, ::testing::Values("Flat", "IVF8,Flat"));

// ---- Index factory recipes ---------------------------------------------------------------------

struct Recipe {
  const char* description;
  int nlist;           // 0 for non-IVF
  int k_factor;        // k_factor() after training with the default
  bool exact_vectors;  // stores_exact_vectors()
  bool exact_search;   // all lists and enough candidates give the exact neighbours
};

class FactoryStringTest : public FaissIndexTest,
                          public ::testing::WithParamInterface<std::tuple<Recipe, Metric>> {};

TEST_P(FactoryStringTest, MakesTheIndexItNames) {
  const auto& [recipe, metric] = GetParam();
  const FrameMatrix& data = *pq_frames_;
  // nprobe stored = all lists, so that every recipe can be searched exhaustively.
  std::unique_ptr<FaissIndex> trained =
      TrainOrDie(recipe.description, metric, data, std::max(1, recipe.nlist));
  ASSERT_NE(trained, nullptr);
  std::unique_ptr<FaissIndex> loaded = WriteAndLoad(*trained);
  ASSERT_NE(loaded, nullptr);
  for (const FaissIndex* index : {trained.get(), loaded.get()}) {
    EXPECT_EQ(index->description(), recipe.description);
    EXPECT_EQ(index->nlist(), recipe.nlist);
    EXPECT_EQ(index->nprobe(), recipe.nlist);
    EXPECT_EQ(index->metric(), metric);
    EXPECT_EQ(index->k_factor(), recipe.k_factor);
    EXPECT_EQ(index->stores_exact_vectors(), recipe.exact_vectors);
    EXPECT_EQ(index->size(), kPqRows);
    EXPECT_EQ(index->dim(), kDim);
  }
  const FrameMatrix queries = Queries(data, 20, 8);
  constexpr int kK = 5;
  // k_factor large enough to re-rank every vector; indexes without a refine step ignore it.
  const Neighbours got = SearchOrDie(*loaded, queries, kK, 0, 1, kPqRows / kK);
  if (recipe.exact_search) {
    ExpectExact(got, BruteForce(data, queries, kK, metric), data, queries, kK, metric);
  } else {
    EXPECT_THAT(got.ids, Each(AllOf(::testing::Ge(0), ::testing::Lt(kPqRows))));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Recipes, FactoryStringTest,
    ::testing::Combine(::testing::Values(Recipe{"IVF8,Flat", 8, 0, true, true},
                                         Recipe{"IVF8,PQ8x4fs,RFlat", 8, 1, true, true},
                                         Recipe{"IVF8,PQ8x4fs", 8, 0, false, false},
                                         Recipe{"IVF8_HNSW32,Flat", 8, 0, true, true},
                                         Recipe{"PCA8,IVF8,Flat,RFlat", 8, 1, true, true},
                                         Recipe{"PCA8,IVF8,Flat", 8, 0, false, false},
                                         Recipe{"PCA8,IVF8,SQ8,RFlat", 8, 1, true, true},
                                         Recipe{"IVF8,SQ8", 8, 0, false, false},
                                         Recipe{"SQfp16", 0, 0, false, false},
                                         Recipe{"Flat", 0, 0, true, true}),
                       ::testing::Values(Metric::kL2, Metric::kInnerProduct)),
    [](const ::testing::TestParamInfo<std::tuple<Recipe, Metric>>& info) {
      std::string name = std::get<0>(info.param).description;
      for (char& c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      return name + (std::get<1>(info.param) == Metric::kL2 ? "_L2" : "_IP");
    });

// ---- Re-ranking --------------------------------------------------------------------------------

TEST_F(FaissIndexTest, PerCallKFactorRerankingReachesTheExactNeighbours) {
  const FrameMatrix& data = *pq_frames_;
  // All lists probed, so the candidates are limited by k_factor alone.
  std::unique_ptr<FaissIndex> refined = TrainOrDie("IVF8,PQ8x4fs,RFlat", Metric::kL2, data, kNlist);
  std::unique_ptr<FaissIndex> flat = TrainOrDie("Flat", Metric::kL2, data);
  ASSERT_NE(refined, nullptr);
  ASSERT_NE(flat, nullptr);
  ASSERT_EQ(refined->k_factor(), 1);
  const FrameMatrix queries = Queries(data, 50, 9);
  constexpr int kK = 8;
  const Neighbours exact = SearchOrDie(*flat, queries, kK, 0);

  // k_factor 0 is the stored one.
  const Neighbours stored = SearchOrDie(*refined, queries, kK, 0, 1, /*k_factor=*/0);
  const Neighbours one = SearchOrDie(*refined, queries, kK, 0, 1, /*k_factor=*/1);
  EXPECT_EQ(stored.ids, one.ids);
  EXPECT_EQ(stored.scores, one.scores);
  // Re-ranking only the k PQ candidates misses some exact neighbours, but its scores are exact.
  EXPECT_NE(stored.ids, exact.ids);
  for (int64_t q = 0; q < queries.rows; ++q) {
    for (int j = 0; j < kK; ++j) {
      const int64_t id = stored.ids[q * kK + j];
      ASSERT_GE(id, 0);
      EXPECT_TRUE(Close(stored.scores[q * kK + j],
                        Score(queries.row(q), data.row(id), kDim, Metric::kL2), 1e-4));
      if (j > 0) {
        EXPECT_LE(stored.scores[q * kK + j - 1], stored.scores[q * kK + j]);
      }
    }
  }
  // Enough candidates give the Flat index's neighbours with exact distances.
  const Neighbours reranked = SearchOrDie(*refined, queries, kK, 0, 1, /*k_factor=*/32);
  ExpectExact(reranked, AsExact(exact), data, queries, kK, Metric::kL2);
}

TEST_F(FaissIndexTest, StoredKFactorIsUsedAndSurvivesWriteAndLoad) {
  const FrameMatrix& data = *pq_frames_;
  std::unique_ptr<FaissIndex> trained =
      TrainOrDie("IVF8,PQ8x4fs,RFlat", Metric::kInnerProduct, data, kNlist, /*k_factor=*/4);
  ASSERT_NE(trained, nullptr);
  std::unique_ptr<FaissIndex> loaded = WriteAndLoad(*trained);
  ASSERT_NE(loaded, nullptr);
  EXPECT_EQ(trained->k_factor(), 4);
  EXPECT_EQ(loaded->k_factor(), 4);
  const FrameMatrix queries = Queries(data, 50, 10);
  const Neighbours stored = SearchOrDie(*loaded, queries, 6, 0, 1, /*k_factor=*/0);
  const Neighbours four = SearchOrDie(*loaded, queries, 6, 0, 1, /*k_factor=*/4);
  const Neighbours one = SearchOrDie(*loaded, queries, 6, 0, 1, /*k_factor=*/1);
  EXPECT_EQ(stored.ids, four.ids);
  EXPECT_EQ(stored.scores, four.scores);
  EXPECT_NE(stored.ids, one.ids);
}

TEST_F(FaissIndexTest, RefinedIvfPqTakesPerCallNprobe) {
  const FrameMatrix& data = *pq_frames_;
  // "np": no polysemous training, which takes a second and is irrelevant here.
  std::unique_ptr<FaissIndex> index = TrainOrDie("IVF8,PQ8x4np,RFlat", Metric::kL2, data);
  ASSERT_NE(index, nullptr);
  EXPECT_EQ(index->description(), "IVF8,PQ8x4,RFlat");
  EXPECT_EQ(index->nprobe(), 1);
  const FrameMatrix queries = Queries(data, 40, 11);
  constexpr int kK = 6;
  const Neighbours all_lists = SearchOrDie(*index, queries, kK, kNlist, 1, /*k_factor=*/200);
  ExpectExact(all_lists, BruteForce(data, queries, kK, Metric::kL2), data, queries, kK,
              Metric::kL2);
  const Neighbours one_list = SearchOrDie(*index, queries, kK, 0, 1, /*k_factor=*/200);
  EXPECT_NE(one_list.ids, all_lists.ids);
}

TEST_F(FaissIndexTest, PcaIvfTakesPerCallNprobeWithTheCoarseStepInTheReducedSpace) {
  const FrameMatrix& data = *pq_frames_;
  std::unique_ptr<FaissIndex> trained = TrainOrDie("PCA8,IVF8,Flat,RFlat", Metric::kL2, data);
  ASSERT_NE(trained, nullptr);
  IndexLoadOptions every_list, projected;
  every_list.prune_coarse_step = false;
  std::unique_ptr<FaissIndex> pruned = WriteAndLoad(*trained, projected);
  std::unique_ptr<FaissIndex> scored = WriteAndLoad(*trained, every_list);
  ASSERT_NE(pruned, nullptr);
  ASSERT_NE(scored, nullptr);
  EXPECT_TRUE(pruned->pruned_coarse_step());
  EXPECT_FALSE(scored->pruned_coarse_step());
  // The refine index's raw vectors, the lists' 8-d codes and the PCA's matrix are all counted.
  EXPECT_GE(pruned->memory_bytes(),
            kPqRows * (kDim + 8) * static_cast<int64_t>(sizeof(float)) + 8 * kDim * 4);

  const FrameMatrix queries = Queries(data, 40, 13);
  constexpr int kK = 6;
  // Both coarse steps choose the same lists in the projected space.
  std::vector<int64_t> lists_pruned(queries.rows * 3), lists_scored(queries.rows * 3);
  ASSERT_THAT(pruned->CoarseLists(queries.values.data(), queries.rows, 3, 1, lists_pruned.data()),
              IsOk());
  ASSERT_THAT(scored->CoarseLists(queries.values.data(), queries.rows, 3, 1, lists_scored.data()),
              IsOk());
  EXPECT_EQ(lists_pruned, lists_scored);
  EXPECT_THAT(lists_pruned, Each(AllOf(::testing::Ge(0), ::testing::Lt(kNlist))));

  const Neighbours all_lists = SearchOrDie(*pruned, queries, kK, kNlist, 1, /*k_factor=*/200);
  ExpectExact(all_lists, BruteForce(data, queries, kK, Metric::kL2), data, queries, kK,
              Metric::kL2);
  const Neighbours one_list = SearchOrDie(*pruned, queries, kK, 1, 1, /*k_factor=*/200);
  EXPECT_NE(one_list.ids, all_lists.ids);
  const Neighbours one_list_scored = SearchOrDie(*scored, queries, kK, 1, 1, /*k_factor=*/200);
  EXPECT_EQ(one_list.ids, one_list_scored.ids);
}

TEST_F(FaissIndexTest, FastScanRejectsAnotherNprobe) {
  const FrameMatrix queries = Queries(*pq_frames_, 10, 12);
  for (const char* description : {"IVF8,PQ8x4fs", "IVF8,PQ8x4fs,RFlat"}) {
    SCOPED_TRACE(description);
    std::unique_ptr<FaissIndex> index =
        TrainOrDie(description, Metric::kL2, *pq_frames_, /*nprobe=*/2);
    ASSERT_NE(index, nullptr);
    EXPECT_EQ(index->nprobe(), 2);
    std::vector<float> scores(queries.rows * 4);
    std::vector<int64_t> ids(queries.rows * 4);
    SearchParams params;
    params.k = 4;
    params.nprobe = 3;
    EXPECT_THAT(index->Search(queries.values.data(), queries.rows, params, 1, scores.data(),
                              ids.data()),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("nprobe is 3"), HasSubstr("stored nprobe 2"),
                               HasSubstr(description))));
    // The stored value, asked for explicitly or as 0, is fine.
    const Neighbours zero = SearchOrDie(*index, queries, 4, 0);
    const Neighbours two = SearchOrDie(*index, queries, 4, 2);
    EXPECT_EQ(zero.ids, two.ids);
  }
}

TEST_F(FaissIndexTest, NegativeKFactorIsInvalidArgument) {
  std::unique_ptr<FaissIndex> index = TrainOrDie("Flat", Metric::kL2, *frames_);
  ASSERT_NE(index, nullptr);
  std::vector<float> scores(8);
  std::vector<int64_t> ids(8);
  SearchParams params;
  params.k_factor = -1;
  EXPECT_THAT(index->Search(frames_->values.data(), 1, params, 1, scores.data(), ids.data()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("k_factor is -1")));
}

// ---- Sidecar of exact vectors ------------------------------------------------------------------

TEST_F(FaissIndexTest, SidecarGivesExactStoredVectors) {
  const FrameMatrix& data = *pq_frames_;
  std::unique_ptr<FaissIndex> index = TrainOrDie("IVF8,PQ8x4fs", Metric::kL2, data);
  ASSERT_NE(index, nullptr);
  const std::string vectors_path = scratch_.Join("vectors.f32");
  ASSERT_THAT(WriteVectorsFile(vectors_path, data.values.data(), data.rows, kDim), IsOk());

  std::unique_ptr<FaissIndex> plain = WriteAndLoad(*index);
  ASSERT_NE(plain, nullptr);
  EXPECT_FALSE(plain->stores_exact_vectors());
  EXPECT_NE(std::memcmp(plain->StoredVector(0), data.row(0), kDim * sizeof(float)), 0);

  IndexLoadOptions options;
  options.vectors_path = vectors_path;
  std::unique_ptr<FaissIndex> exact = WriteAndLoad(*index, options);
  ASSERT_NE(exact, nullptr);
  EXPECT_TRUE(exact->stores_exact_vectors());
  for (int64_t id = 0; id < data.rows; ++id) {
    ASSERT_EQ(std::memcmp(exact->StoredVector(id), data.row(id), kDim * sizeof(float)), 0)
        << "id " << id;
  }
  // The sidecar changes what StoredVector returns, not how the index searches.
  const FrameMatrix queries = Queries(data, 20, 13);
  EXPECT_EQ(SearchOrDie(*plain, queries, 5, 0).ids, SearchOrDie(*exact, queries, 5, 0).ids);
}

TEST_F(FaissIndexTest, SidecarOfTheWrongSizeIsInvalidArgument) {
  std::unique_ptr<FaissIndex> index = TrainOrDie("Flat", Metric::kL2, *frames_);
  ASSERT_NE(index, nullptr);
  const std::string index_path = scratch_.Join("flat.index");
  ASSERT_THAT(index->Write(index_path), IsOk());
  IndexLoadOptions options;
  options.vectors_path = scratch_.Join("short.f32");
  ASSERT_THAT(WriteVectorsFile(options.vectors_path, frames_->values.data(), kRows - 1, kDim),
              IsOk());
  EXPECT_THAT(FaissIndex::Load(index_path, options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(options.vectors_path),
                             HasSubstr(absl::StrCat((kRows - 1) * kDim * 4, " bytes")),
                             HasSubstr(absl::StrCat(kRows * kDim * 4, " bytes")))));
  options.vectors_path = scratch_.Join("missing.f32");
  EXPECT_THAT(FaissIndex::Load(index_path, options),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(options.vectors_path)));
}

// ---- Training progress and cancellation --------------------------------------------------------

TEST_F(FaissIndexTest, TrainReportsTrainingThenTheFractionAdded) {
  TrainOptions options;
  options.description = "IVF8,Flat";
  options.add_batch = 100;
  FakeBuildControl control;
  ASSERT_THAT(FaissIndex::Train(options, frames_->values.data(), kRows, kDim, &control), IsOk());
  const std::vector<FakeBuildControl::Report> reports = control.reports();
  ASSERT_EQ(reports.size(), 5u);
  EXPECT_EQ(reports[0].fraction, 0.0);
  EXPECT_THAT(reports[0].message, HasSubstr("training IVF8,Flat"));
  for (int batch = 1; batch <= 4; ++batch) {
    EXPECT_DOUBLE_EQ(reports[batch].fraction, batch / 4.0);
    EXPECT_EQ(reports[batch].message, absl::StrCat("added ", batch * 100, " of 400 vectors"));
  }
}

TEST_F(FaissIndexTest, CancellingDuringTrainingStopsFaissKmeans) {
  // 10 k-means iterations over 100,000 x 64 to 2,048 centroids would take seconds; the cancel
  // is seen at faiss's first interrupt check inside the first iteration.
  const FrameMatrix data = GenerateClusteredFrames(100000, 64, 256, 14);
  TrainOptions options;
  options.description = "IVF2048,Flat";
  FakeBuildControl control;
  control.CancelAtReport(1);  // "training ...", reported just before faiss's train runs
  EXPECT_THAT(FaissIndex::Train(options, data.values.data(), data.rows, data.dim, &control),
              StatusIs(absl::StatusCode::kCancelled, ::testing::_));
  // Nothing was added: training itself stopped.
  EXPECT_EQ(control.reports().size(), 1u);
}

TEST_F(FaissIndexTest, CancellingBetweenAddBatchesStopsAdding) {
  TrainOptions options;
  options.description = "IVF8,Flat";
  options.add_batch = 100;
  FakeBuildControl control;
  control.CancelAtReport(3);  // training, then two batches added
  EXPECT_THAT(FaissIndex::Train(options, frames_->values.data(), kRows, kDim, &control),
              StatusIs(absl::StatusCode::kCancelled, ::testing::_));
  EXPECT_EQ(control.reports().size(), 3u);
}

}  // namespace
}  // namespace timbre
