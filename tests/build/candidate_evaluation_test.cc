#include "server/build/candidate_evaluation.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/build/demo_speaker.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::DoubleNear;
using ::testing::Ge;
using ::testing::HasSubstr;
using ::testing::Lt;
using ::timbre::testing::IsOk;
using ::timbre::testing::FakeBuildControl;
using ::timbre::testing::StatusIs;
using ::timbre::testing::TrainOrDie;

constexpr int kDim = 16;

FrameMatrix Rows(const FrameMatrix& frames, int64_t begin, int64_t end) {
  FrameMatrix rows;
  rows.dim = frames.dim;
  rows.rows = end - begin;
  rows.values.assign(frames.row(begin), frames.row(begin) + rows.rows * frames.dim);
  return rows;
}

SearchParams Probing(int nprobe) {
  SearchParams params;
  params.nprobe = nprobe;
  return params;
}

EvaluationOptions FewCalls() {
  EvaluationOptions options;
  options.latency_calls = 20;
  return options;
}

// 2,000 stored frames around 8 centres and 200 held-out frames from the same distribution; 64
// lists split every cluster, so probing one list misses neighbours.
class CandidateEvaluationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const FrameMatrix all = GenerateClusteredFrames(2200, kDim, 8, 31);
    stored_ = new FrameMatrix(Rows(all, 0, 2000));
    queries_ = new FrameMatrix(Rows(all, 2000, 2200));
    exact_ = TrainOrDie("Flat", Metric::kL2, *stored_).release();
    ivf_ = TrainOrDie("IVF64,Flat", Metric::kL2, *stored_).release();
  }
  static void TearDownTestSuite() {
    delete ivf_;
    delete exact_;
    delete queries_;
    delete stored_;
  }

  static FrameMatrix* stored_;
  static FrameMatrix* queries_;
  static FaissIndex* exact_;
  static FaissIndex* ivf_;
};

FrameMatrix* CandidateEvaluationTest::stored_ = nullptr;
FrameMatrix* CandidateEvaluationTest::queries_ = nullptr;
FaissIndex* CandidateEvaluationTest::exact_ = nullptr;
FaissIndex* CandidateEvaluationTest::ivf_ = nullptr;

TEST_F(CandidateEvaluationTest, ExactCandidateHasFullRecallAndCosine) {
  const std::unique_ptr<FaissIndex> flat = TrainOrDie("Flat", Metric::kL2, *stored_);
  absl::StatusOr<CandidateFigures> figures =
      EvaluateCandidate(*flat, SearchParams(), *exact_, *queries_, FewCalls(), nullptr);
  ASSERT_THAT(figures, IsOk());
  EXPECT_DOUBLE_EQ(figures->recall_at_k, 1.0);
  EXPECT_THAT(figures->mean_blend_cosine, DoubleNear(1.0, 1e-6));
}

TEST_F(CandidateEvaluationTest, MoreProbesGiveHigherOrEqualRecall) {
  absl::StatusOr<CandidateFigures> one =
      EvaluateCandidate(*ivf_, Probing(1), *exact_, *queries_, FewCalls(), nullptr);
  absl::StatusOr<CandidateFigures> eight =
      EvaluateCandidate(*ivf_, Probing(8), *exact_, *queries_, FewCalls(), nullptr);
  absl::StatusOr<CandidateFigures> all =
      EvaluateCandidate(*ivf_, Probing(64), *exact_, *queries_, FewCalls(), nullptr);
  ASSERT_THAT(one, IsOk());
  ASSERT_THAT(eight, IsOk());
  ASSERT_THAT(all, IsOk());
  EXPECT_THAT(one->recall_at_k, Lt(1.0));
  EXPECT_THAT(one->mean_blend_cosine, Lt(1.0));
  EXPECT_THAT(eight->recall_at_k, Ge(one->recall_at_k));
  EXPECT_THAT(all->recall_at_k, Ge(eight->recall_at_k));
  EXPECT_DOUBLE_EQ(all->recall_at_k, 1.0);
  EXPECT_THAT(all->mean_blend_cosine, DoubleNear(1.0, 1e-6));
}

TEST_F(CandidateEvaluationTest, StoredNprobeIsUsedWhenParamsLeaveItZero) {
  // The index stores nprobe 1, as RVC's files do.
  absl::StatusOr<CandidateFigures> stored =
      EvaluateCandidate(*ivf_, SearchParams(), *exact_, *queries_, FewCalls(), nullptr);
  absl::StatusOr<CandidateFigures> one =
      EvaluateCandidate(*ivf_, Probing(1), *exact_, *queries_, FewCalls(), nullptr);
  ASSERT_THAT(stored, IsOk());
  ASSERT_THAT(one, IsOk());
  EXPECT_DOUBLE_EQ(stored->recall_at_k, one->recall_at_k);
}

TEST_F(CandidateEvaluationTest, LatencyFiguresArePositiveAndOrdered) {
  absl::StatusOr<CandidateFigures> figures =
      EvaluateCandidate(*ivf_, Probing(4), *exact_, *queries_, FewCalls(), nullptr);
  ASSERT_THAT(figures, IsOk());
  EXPECT_GT(figures->p50_call_us, 0.0);
  EXPECT_GE(figures->p99_call_us, figures->p50_call_us);
}

TEST_F(CandidateEvaluationTest, TimeCandidateTimesWithoutTheFidelityPass) {
  for (bool unpruned : {false, true}) {
    SearchParams params = Probing(4);
    params.unpruned = unpruned;
    FakeBuildControl control;
    absl::StatusOr<CandidateFigures> figures =
        TimeCandidate(*ivf_, params, *queries_, FewCalls(), &control);
    ASSERT_THAT(figures, IsOk()) << unpruned;
    EXPECT_GT(figures->p50_call_us, 0.0);
    EXPECT_GE(figures->p99_call_us, figures->p50_call_us);
    EXPECT_EQ(figures->recall_at_k, 0.0) << "not measured";
    EXPECT_EQ(figures->mean_blend_cosine, 0.0) << "not measured";
    const std::vector<double> fractions = control.fractions();
    ASSERT_FALSE(fractions.empty());
    EXPECT_GE(fractions.front(), 0.5) << "the timing half of an evaluation only";
    EXPECT_DOUBLE_EQ(fractions.back(), 1.0);
  }
  FakeBuildControl cancelled;
  cancelled.Cancel();
  EXPECT_THAT(TimeCandidate(*ivf_, Probing(4), *queries_, FewCalls(), &cancelled),
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
}

TEST_F(CandidateEvaluationTest, TimeCandidateRejectsBadInputs) {
  using absl::StatusCode;
  EXPECT_THAT(TimeCandidate(*ivf_, Probing(65), *queries_, FewCalls(), nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("nprobe is 65")));
  EXPECT_THAT(TimeCandidate(*ivf_, Probing(1), Rows(*queries_, 0, 0), FewCalls(), nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("no held-out queries")));
  EXPECT_THAT(TimeCandidate(*ivf_, Probing(1), GenerateClusteredFrames(10, 2 * kDim, 2, 3),
                            FewCalls(), nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("queries have dim 32")));
  EvaluationOptions options = FewCalls();
  options.latency_calls = 0;
  EXPECT_THAT(TimeCandidate(*ivf_, Probing(1), *queries_, options, nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("latency_calls")));
  options = FewCalls();
  options.index_rate = -0.5f;
  EXPECT_THAT(TimeCandidate(*ivf_, Probing(1), *queries_, options, nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("index_rate")));
  SearchParams k4 = Probing(1);
  k4.k = 4;
  EXPECT_THAT(TimeCandidate(*ivf_, k4, *queries_, FewCalls(), nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("k is 4")));
  options = FewCalls();
  options.k = 2001;
  SearchParams k2001 = Probing(1);
  k2001.k = 2001;
  EXPECT_THAT(TimeCandidate(*ivf_, k2001, *queries_, options, nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("k is 2001")));
}

TEST_F(CandidateEvaluationTest, ReportsProgressAndStopsWhenCancelled) {
  FakeBuildControl control;
  ASSERT_THAT(EvaluateCandidate(*ivf_, Probing(2), *exact_, *queries_, FewCalls(), &control),
              IsOk());
  const std::vector<double> fractions = control.fractions();
  ASSERT_FALSE(fractions.empty());
  EXPECT_TRUE(std::is_sorted(fractions.begin(), fractions.end()));
  EXPECT_DOUBLE_EQ(fractions.back(), 1.0);

  FakeBuildControl cancelled;
  cancelled.Cancel();
  EXPECT_THAT(EvaluateCandidate(*ivf_, Probing(2), *exact_, *queries_, FewCalls(), &cancelled),
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
  // Cancelled after the fidelity pass's report and the first of the timing pass's reports.
  FakeBuildControl cancelled_while_timing;
  cancelled_while_timing.CancelAtReport(2);
  EXPECT_THAT(EvaluateCandidate(*ivf_, Probing(2), *exact_, *queries_, EvaluationOptions(),
                                &cancelled_while_timing),
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
  EXPECT_EQ(cancelled_while_timing.fractions().size(), 2u);
}

TEST_F(CandidateEvaluationTest, RejectsMismatchedInputs) {
  using absl::StatusCode;
  const EvaluationOptions options = FewCalls();
  EXPECT_THAT(EvaluateCandidate(*ivf_, Probing(1), *ivf_, *queries_, options, nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("must be a Flat index")));
  const std::unique_ptr<FaissIndex> fewer =
      TrainOrDie("Flat", Metric::kL2, Rows(*stored_, 0, 1000));
  EXPECT_THAT(EvaluateCandidate(*fewer, SearchParams(), *exact_, *queries_, options, nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("same vectors")));
  const std::unique_ptr<FaissIndex> inner = TrainOrDie("Flat", Metric::kInnerProduct, *stored_);
  EXPECT_THAT(EvaluateCandidate(*inner, SearchParams(), *exact_, *queries_, options, nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("same metric")));
  const std::unique_ptr<FaissIndex> wider =
      TrainOrDie("Flat", Metric::kL2, GenerateClusteredFrames(2000, 2 * kDim, 8, 31));
  EXPECT_THAT(EvaluateCandidate(*wider, SearchParams(), *exact_, *queries_, options, nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("dim 32")));
  EXPECT_THAT(EvaluateCandidate(*ivf_, Probing(1), *exact_,
                                GenerateClusteredFrames(10, 2 * kDim, 2, 3), options, nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("queries have dim 32")));
  EXPECT_THAT(
      EvaluateCandidate(*ivf_, Probing(1), *exact_, Rows(*queries_, 0, 0), options, nullptr),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr("no held-out queries")));
}

TEST_F(CandidateEvaluationTest, RejectsBadParamsAndOptions) {
  using absl::StatusCode;
  SearchParams k4 = Probing(1);
  k4.k = 4;
  EXPECT_THAT(EvaluateCandidate(*ivf_, k4, *exact_, *queries_, FewCalls(), nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("k is 4")));
  EXPECT_THAT(EvaluateCandidate(*ivf_, Probing(65), *exact_, *queries_, FewCalls(), nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("nprobe is 65")));
  EXPECT_THAT(EvaluateCandidate(*exact_, Probing(1), *exact_, *queries_, FewCalls(), nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("[0, 0]")));
  EvaluationOptions options = FewCalls();
  options.k = 0;
  SearchParams k0 = Probing(1);
  k0.k = 0;
  EXPECT_THAT(EvaluateCandidate(*ivf_, k0, *exact_, *queries_, options, nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("k is 0")));
  options = FewCalls();
  options.index_rate = 1.5f;
  EXPECT_THAT(EvaluateCandidate(*ivf_, Probing(1), *exact_, *queries_, options, nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("index_rate")));
  options = FewCalls();
  options.call_frames = 0;
  EXPECT_THAT(EvaluateCandidate(*ivf_, Probing(1), *exact_, *queries_, options, nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("call_frames")));
  options = FewCalls();
  options.latency_calls = 0;
  EXPECT_THAT(EvaluateCandidate(*ivf_, Probing(1), *exact_, *queries_, options, nullptr),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("latency_calls")));
}

// Recall on a case small enough to count by hand. Two groups of three points in the plane, far
// apart, trained into IVF2: each group becomes one list.
//   ids 0-2: (0,0) (1,0) (0,1)      ids 3-5: (10,0) (11,0) (10,1)
// k = 2, nprobe 1:
//   (4,0)    probes the left list;  exact {1, 0}, found {1, 0}: 2 of 2
//   (5.4,0)  probes the right list (its centroid is nearer); exact {1 (19.36), 3 (21.16)},
//            found {3, 5 (22.16)}: 1 of 2
//   (10,0.4) probes the right list;  exact {3, 5}, found {3, 5}: 2 of 2
// recall@2 = (2 + 1 + 2) / (3 * 2) = 5/6.
TEST(CandidateEvaluationHandCountTest, RecallEqualsTheHandCount) {
  FrameMatrix points;
  points.dim = 2;
  points.rows = 6;
  points.values = {0, 0, 1, 0, 0, 1, 10, 0, 11, 0, 10, 1};
  const std::unique_ptr<FaissIndex> exact = TrainOrDie("Flat", Metric::kL2, points);
  const std::unique_ptr<FaissIndex> ivf = TrainOrDie("IVF2,Flat", Metric::kL2, points);
  FrameMatrix queries;
  queries.dim = 2;
  queries.rows = 3;
  queries.values = {4, 0, 5.4f, 0, 10, 0.4f};
  EvaluationOptions options = FewCalls();
  options.k = 2;
  SearchParams params = Probing(1);
  params.k = 2;
  absl::StatusOr<CandidateFigures> figures =
      EvaluateCandidate(*ivf, params, *exact, queries, options, nullptr);
  ASSERT_THAT(figures, IsOk());
  EXPECT_DOUBLE_EQ(figures->recall_at_k, 5.0 / 6.0);
  EXPECT_THAT(figures->mean_blend_cosine, Lt(1.0));
}

}  // namespace
}  // namespace timbre
