#include "server/serving/blend.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace timbre {
namespace {

using ::testing::ElementsAre;

// A store of `count` random vectors of `dim` values that records which ids were read.
class FakeStore {
 public:
  FakeStore(int64_t count, int dim, uint32_t seed) : dim_(dim), values_(count * dim) {
    std::mt19937 random(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (float& value : values_) value = normal(random);
  }

  const float* operator()(int64_t id) {
    requested_.push_back(id);
    return values_.data() + id * dim_;
  }
  const float* at(int64_t id) const { return values_.data() + id * dim_; }
  int64_t size() const { return static_cast<int64_t>(values_.size()) / dim_; }
  const std::vector<int64_t>& requested() const { return requested_; }

 private:
  int dim_;
  std::vector<float> values_;
  std::vector<int64_t> requested_;
};

// RVC's blend in double precision, written from the formula rather than from blend.cc.
// Missing neighbours (id < 0) are skipped; a frame without neighbours is returned unchanged.
std::vector<double> ReferenceBlend(const std::vector<float>& frames, int64_t rows, int dim,
                                   const std::vector<float>& scores,
                                   const std::vector<int64_t>& ids, int k, Metric metric,
                                   double index_rate, const FakeStore& store) {
  std::vector<double> out(rows * dim);
  for (int64_t i = 0; i < rows; ++i) {
    std::vector<double> weights(k, 0.0);
    double sum = 0.0;
    for (int j = 0; j < k; ++j) {
      if (ids[i * k + j] < 0) continue;
      double score = scores[i * k + j];
      if (metric == Metric::kInnerProduct) score = 2.0 - 2.0 * score;
      weights[j] = (1.0 / score) * (1.0 / score);
      sum += weights[j];
    }
    for (int c = 0; c < dim; ++c) {
      const double frame = frames[i * dim + c];
      if (sum == 0.0) {
        out[i * dim + c] = frame;
        continue;
      }
      double retrieved = 0.0;
      for (int j = 0; j < k; ++j) {
        if (ids[i * k + j] < 0) continue;
        retrieved += weights[j] / sum * store.at(ids[i * k + j])[c];
      }
      out[i * dim + c] = retrieved * index_rate + (1.0 - index_rate) * frame;
    }
  }
  return out;
}

struct Case {
  int64_t rows = 0;
  int dim = 0;
  int k = 0;
  std::vector<float> frames;
  std::vector<float> scores;
  std::vector<int64_t> ids;
};

// Random frames with k distinct random neighbours each, scores increasing (nearest first).
Case RandomCase(int64_t rows, int dim, int k, int64_t store_size, uint32_t seed,
                Metric metric = Metric::kL2) {
  Case c;
  c.rows = rows;
  c.dim = dim;
  c.k = k;
  std::mt19937 random(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> step(0.05f, 1.0f);
  std::uniform_int_distribution<int64_t> pick(0, store_size - 1);
  c.frames.resize(rows * dim);
  for (float& value : c.frames) value = normal(random);
  for (int64_t i = 0; i < rows; ++i) {
    std::set<int64_t> used;
    float score = metric == Metric::kL2 ? 0.0f : 0.99f;
    for (int j = 0; j < k; ++j) {
      if (metric == Metric::kL2) {
        score += step(random);
      } else {
        score -= 0.1f * step(random);  // similarities decreasing, all below 1
      }
      int64_t id;
      do {
        id = pick(random);
      } while (!used.insert(id).second);
      c.scores.push_back(score);
      c.ids.push_back(id);
    }
  }
  return c;
}

void ExpectNear(const std::vector<float>& actual, const std::vector<double>& expected,
                double relative) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    const double tolerance = relative * std::max(1.0, std::abs(expected[i]));
    ASSERT_NEAR(actual[i], expected[i], tolerance) << "at " << i;
  }
}

std::vector<float> Blend(const Case& c, Metric metric, float index_rate, FakeStore& store) {
  std::vector<float> out(c.frames.size(), -12345.0f);
  BlendFrames(
      c.frames.data(), c.rows, c.dim, c.scores.data(), c.ids.data(), c.k, metric, index_rate,
      [&store](int64_t id) { return store(id); }, out.data());
  return out;
}

TEST(BlendFramesTest, MatchesDoublePrecisionReference) {
  FakeStore store(500, 24, 1);
  const Case c = RandomCase(40, 24, 8, store.size(), 2);
  for (float rate : {0.25f, 0.5f, 0.75f, 0.9f}) {
    const std::vector<float> out = Blend(c, Metric::kL2, rate, store);
    SCOPED_TRACE(rate);
    ExpectNear(
        out,
        ReferenceBlend(c.frames, c.rows, c.dim, c.scores, c.ids, c.k, Metric::kL2, rate, store),
        1e-5);
  }
}

TEST(BlendFramesTest, MatchesReferenceForSingleNeighbour) {
  FakeStore store(50, 8, 5);
  const Case c = RandomCase(10, 8, 1, store.size(), 6);
  const std::vector<float> out = Blend(c, Metric::kL2, 0.6f, store);
  ExpectNear(out,
             ReferenceBlend(c.frames, c.rows, c.dim, c.scores, c.ids, c.k, Metric::kL2, 0.6, store),
             1e-5);
}

TEST(BlendFramesTest, RateZeroReturnsInput) {
  FakeStore store(200, 16, 3);
  const Case c = RandomCase(20, 16, 4, store.size(), 4);
  const std::vector<float> out = Blend(c, Metric::kL2, 0.0f, store);
  EXPECT_EQ(out, c.frames);
}

TEST(BlendFramesTest, RateOneReturnsRetrieved) {
  FakeStore store(200, 16, 3);
  const Case c = RandomCase(20, 16, 4, store.size(), 5);
  const std::vector<float> out = Blend(c, Metric::kL2, 1.0f, store);
  // With rate 1 the frame's own values must not leak in: the reference has no frame term.
  std::vector<float> zeros(c.frames.size(), 0.0f);
  ExpectNear(out,
             ReferenceBlend(zeros, c.rows, c.dim, c.scores, c.ids, c.k, Metric::kL2, 1.0, store),
             1e-5);
}

TEST(BlendFramesTest, OutputMayAliasInput) {
  FakeStore store(200, 16, 7);
  const Case c = RandomCase(12, 16, 4, store.size(), 8);
  const std::vector<float> expected = Blend(c, Metric::kL2, 0.75f, store);
  std::vector<float> in_place = c.frames;
  BlendFrames(
      in_place.data(), c.rows, c.dim, c.scores.data(), c.ids.data(), c.k, Metric::kL2, 0.75f,
      [&store](int64_t id) { return store(id); }, in_place.data());
  EXPECT_EQ(in_place, expected);
}

TEST(BlendFramesTest, ExactMatchTakesAllTheWeight) {
  FakeStore store(10, 4, 9);
  Case c;
  c.rows = 1;
  c.dim = 4;
  c.k = 3;
  c.frames = {1.0f, 2.0f, 3.0f, 4.0f};
  c.scores = {0.0f, 0.5f, 1.0f};
  c.ids = {2, 5, 7};
  const std::vector<float> out = Blend(c, Metric::kL2, 1.0f, store);
  for (int col = 0; col < 4; ++col) {
    ASSERT_TRUE(std::isfinite(out[col]));
    EXPECT_FLOAT_EQ(out[col], store.at(2)[col]);
  }
}

TEST(BlendFramesTest, SeveralExactMatchesShareTheWeightEqually) {
  FakeStore store(10, 4, 10);
  Case c;
  c.rows = 1;
  c.dim = 4;
  c.k = 3;
  c.frames = {1.0f, 2.0f, 3.0f, 4.0f};
  c.scores = {0.0f, 0.0f, 2.0f};
  c.ids = {1, 3, 4};
  const std::vector<float> out = Blend(c, Metric::kL2, 0.5f, store);
  for (int col = 0; col < 4; ++col) {
    const float retrieved = 0.5f * store.at(1)[col] + 0.5f * store.at(3)[col];
    ASSERT_TRUE(std::isfinite(out[col]));
    EXPECT_NEAR(out[col], 0.5f * retrieved + 0.5f * c.frames[col], 1e-6);
  }
}

TEST(BlendFramesTest, WeightOverflowCountsAsExactMatch) {
  // (1 / 1e-30)^2 overflows float32; the result must still be finite.
  FakeStore store(10, 4, 11);
  Case c;
  c.rows = 1;
  c.dim = 4;
  c.k = 2;
  c.frames = {1.0f, 2.0f, 3.0f, 4.0f};
  c.scores = {1e-30f, 0.3f};
  c.ids = {6, 8};
  const std::vector<float> out = Blend(c, Metric::kL2, 1.0f, store);
  for (int col = 0; col < 4; ++col) {
    ASSERT_TRUE(std::isfinite(out[col]));
    EXPECT_FLOAT_EQ(out[col], store.at(6)[col]);
  }
}

TEST(BlendFramesTest, MissingNeighboursAreSkippedAndNeverRead) {
  FakeStore store(300, 12, 12);
  Case c = RandomCase(30, 12, 6, store.size(), 13);
  // Drop neighbours from the tail of some frames, as a short probed list does.
  for (int64_t i = 0; i < c.rows; ++i) {
    const int missing = static_cast<int>(i % 6);  // 0..5 missing of 6
    for (int j = c.k - missing; j < c.k; ++j) c.ids[i * c.k + j] = kNoNeighbour;
  }
  const std::vector<float> out = Blend(c, Metric::kL2, 0.8f, store);
  for (int64_t id : store.requested()) {
    ASSERT_GE(id, 0);
    ASSERT_LT(id, store.size());
  }
  EXPECT_FALSE(store.requested().empty());
  ExpectNear(out,
             ReferenceBlend(c.frames, c.rows, c.dim, c.scores, c.ids, c.k, Metric::kL2, 0.8, store),
             1e-5);
}

TEST(BlendFramesTest, FrameWithoutNeighboursIsReturnedUnchanged) {
  FakeStore store(100, 8, 14);
  Case c = RandomCase(3, 8, 4, store.size(), 15);
  for (int j = 0; j < c.k; ++j) {
    c.ids[1 * c.k + j] = kNoNeighbour;
    c.scores[1 * c.k + j] = std::numeric_limits<float>::max();  // faiss's filler
  }
  const std::vector<float> out = Blend(c, Metric::kL2, 0.75f, store);
  for (int64_t id : store.requested()) ASSERT_GE(id, 0);
  for (int col = 0; col < c.dim; ++col) {
    EXPECT_EQ(out[1 * c.dim + col], c.frames[1 * c.dim + col]);
  }
  // The other frames were blended.
  ExpectNear(
      out, ReferenceBlend(c.frames, c.rows, c.dim, c.scores, c.ids, c.k, Metric::kL2, 0.75, store),
      1e-5);
  EXPECT_NE(out[0], c.frames[0]);
}

TEST(BlendFramesTest, AllFramesWithoutNeighboursNeverReadTheStore) {
  FakeStore store(10, 4, 16);
  Case c;
  c.rows = 2;
  c.dim = 4;
  c.k = 2;
  c.frames = {1, 2, 3, 4, 5, 6, 7, 8};
  c.scores.assign(4, 0.0f);
  c.ids.assign(4, kNoNeighbour);
  const std::vector<float> out = Blend(c, Metric::kL2, 1.0f, store);
  EXPECT_TRUE(store.requested().empty());
  EXPECT_EQ(out, c.frames);
}

TEST(BlendFramesTest, InnerProductUsesTwoMinusTwoScore) {
  FakeStore store(400, 20, 17);
  const Case c = RandomCase(25, 20, 8, store.size(), 18, Metric::kInnerProduct);
  const std::vector<float> out = Blend(c, Metric::kInnerProduct, 0.7f, store);
  ExpectNear(out,
             ReferenceBlend(c.frames, c.rows, c.dim, c.scores, c.ids, c.k, Metric::kInnerProduct,
                            0.7, store),
             1e-5);
}

TEST(BlendFramesTest, InnerProductSimilarityOneIsAnExactMatch) {
  FakeStore store(10, 4, 19);
  Case c;
  c.rows = 1;
  c.dim = 4;
  c.k = 2;
  c.frames = {0.5f, 0.5f, 0.5f, 0.5f};
  c.scores = {1.0f, 0.5f};  // 2 - 2 * 1 = 0: exact
  c.ids = {4, 9};
  const std::vector<float> out = Blend(c, Metric::kInnerProduct, 1.0f, store);
  for (int col = 0; col < 4; ++col) EXPECT_FLOAT_EQ(out[col], store.at(4)[col]);
}

// ---------------------------------------------------------------------------------------------
// NormalizeRows.

FrameMatrix Matrix(int dim, std::vector<float> values) {
  FrameMatrix matrix;
  matrix.dim = dim;
  matrix.rows = static_cast<int64_t>(values.size()) / dim;
  matrix.values = std::move(values);
  return matrix;
}

double Norm(const float* row, int dim) {
  double sum = 0.0;
  for (int c = 0; c < dim; ++c) sum += static_cast<double>(row[c]) * row[c];
  return std::sqrt(sum);
}

TEST(NormalizeRowsTest, UnitNormsAndZeroRowsStayZero) {
  FrameMatrix rows = Matrix(3, {3, 4, 0,         // norm 5
                                0, 0, 0,         // zero
                                -2, 1, 2,        // norm 3
                                1e-12f, 0, 0});  // below the 1e-9 floor: scaled by 1e9
  NormalizeRows(&rows);
  EXPECT_NEAR(rows.values[0], 0.6f, 1e-7);
  EXPECT_NEAR(rows.values[1], 0.8f, 1e-7);
  EXPECT_THAT(std::vector<float>(rows.values.begin() + 3, rows.values.begin() + 6),
              ElementsAre(0, 0, 0));
  EXPECT_NEAR(Norm(rows.row(2), 3), 1.0, 1e-6);
  EXPECT_NEAR(rows.values[6], -2.0f / 3, 1e-7);
  EXPECT_NEAR(rows.values[9], 1e-3f, 1e-9);
  for (float v : rows.values) EXPECT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace timbre
