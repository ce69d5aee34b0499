#include "server/build/candidate_choice.h"

#include <cmath>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::StatusIs;
using timbre::v1::IndexEvaluation;

IndexEvaluation Figures(const std::string& description, int nprobe, double cosine, double p50_ms) {
  IndexEvaluation figures;
  figures.set_description(description);
  figures.set_nprobe(nprobe);
  figures.set_mean_blend_cosine(cosine);
  figures.set_p50_call_ms(p50_ms);
  return figures;
}

// The default bound the auto recipe passes: RVC's recipe without the pruned steps.
constexpr double kDefaultBound = 2.0;

// RVC's recipe first (1 ms), as the auto recipe measures it.
std::vector<IndexEvaluation> Grid() {
  return {Figures("IVF3333,Flat", 1, 0.96, 1.0), Figures("IVF3333,Flat", 4, 0.988, 1.6),
          Figures("IVF1436,Flat", 32, 0.9992, 1.9), Figures("IVF512,Flat", 32, 0.9996, 1.8),
          Figures("IVF512,Flat", 8, 0.9991, 0.9), Figures("IVF3333,Flat", 16, 0.9999, 5.0)};
}

TEST(ChooseCandidateTest, KeepsTheFastestFaithfulOneWithinTheDefaultBound) {
  auto choice = ChooseCandidate(Grid(), 0.999, 0, kDefaultBound);
  ASSERT_THAT(choice, IsOk());
  EXPECT_DOUBLE_EQ(choice->max_call_ms, kDefaultBound);
  EXPECT_EQ(choice->chosen, 4);
  EXPECT_TRUE(choice->notes.empty());
}

TEST(ChooseCandidateTest, AFasterFaithfulOneOverTheBoundIsNotKept) {
  std::vector<IndexEvaluation> grid = Grid();
  grid[4].set_mean_blend_cosine(0.99);  // the 0.9 ms one misses the target now
  auto choice = ChooseCandidate(grid, 0.999, 1.85, kDefaultBound);
  ASSERT_THAT(choice, IsOk());
  EXPECT_EQ(choice->chosen, 3) << "IVF512 nprobe 32 at 1.8 ms; IVF1436 at 1.9 ms is over 1.85";
  EXPECT_DOUBLE_EQ(choice->max_call_ms, 1.85);
}

TEST(ChooseCandidateTest, NoneFaithfulWithinTheBoundKeepsTheMostFaithfulWithinItAndSaysWhy) {
  // Target 0.9999: only IVF3333 nprobe 16 reaches it, at 5 ms, over the 2 ms default bound.
  auto choice = ChooseCandidate(Grid(), 0.9999, 0, kDefaultBound);
  ASSERT_THAT(choice, IsOk());
  EXPECT_EQ(choice->chosen, 3) << "0.9996 is the best within 2 ms";
  EXPECT_THAT(choice->notes,
              ElementsAre(HasSubstr("no candidate reached mean blend cosine 0.9999 within p50 <= "
                                    "2.000 ms; kept the most faithful one within it: IVF512,Flat "
                                    "nprobe 32"),
                          HasSubstr("over the bound: IVF3333,Flat nprobe 16")));
}

TEST(ChooseCandidateTest, NoneFaithfulAtAllSaysSoWithoutNamingOneOverTheBound) {
  auto choice = ChooseCandidate(Grid(), 1.0, 0, kDefaultBound);
  ASSERT_THAT(choice, IsOk());
  EXPECT_EQ(choice->chosen, 3);
  ASSERT_EQ(choice->notes.size(), 1u);
  EXPECT_THAT(choice->notes[0], HasSubstr("no candidate reached mean blend cosine 1.0000"));
}

TEST(ChooseCandidateTest, ABoundBelowEveryCandidateKeepsTheFastest) {
  auto choice = ChooseCandidate(Grid(), 0.999, 0.5, kDefaultBound);
  ASSERT_THAT(choice, IsOk());
  EXPECT_EQ(choice->chosen, 4);
  EXPECT_THAT(choice->notes, ElementsAre(HasSubstr("no candidate ran within p50 <= 0.500 ms; "
                                                   "kept the fastest one: IVF512,Flat nprobe 8"),
                                         HasSubstr("over the bound: IVF512,Flat nprobe 8")));
}

TEST(ChooseCandidateTest, AnExplicitBoundReplacesTheDefault) {
  // 1.0 ms admits only RVC's recipe and IVF512 nprobe 8 (0.9 ms, 0.9991).
  auto choice = ChooseCandidate(Grid(), 0.999, 1.0, kDefaultBound);
  ASSERT_THAT(choice, IsOk());
  EXPECT_DOUBLE_EQ(choice->max_call_ms, 1.0);
  EXPECT_EQ(choice->chosen, 4);
  // With a bound of its own, a default that could not be used does not matter.
  EXPECT_THAT(ChooseCandidate(Grid(), 0.999, 1.0, 0), IsOk());
}

TEST(ChooseCandidateTest, RefusesNoCandidatesAndANegativeOrNanBound) {
  EXPECT_THAT(ChooseCandidate({}, 0.999, 0, kDefaultBound),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no candidates")));
  EXPECT_THAT(ChooseCandidate(Grid(), 0.999, -1, kDefaultBound),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_call_ms -1")));
  EXPECT_THAT(ChooseCandidate(Grid(), 0.999, std::nan(""), kDefaultBound),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_call_ms")));
  for (double bad : {0.0, -1.0, std::nan("")}) {
    EXPECT_THAT(ChooseCandidate(Grid(), 0.999, 0, bad),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("default latency bound")))
        << bad;
  }
}

}  // namespace
}  // namespace timbre
