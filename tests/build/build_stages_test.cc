#include "server/build/build_stages.h"

#include <set>
#include <string>

#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::ElementsAre;
using ::timbre::testing::IsOk;
using timbre::v1::Recipe;

std::vector<std::string> Names(const std::vector<BuildStep>& steps) {
  std::vector<std::string> names;
  for (const BuildStep& step : steps) names.emplace_back(BuildStageName(step.stage));
  return names;
}

// The steps tile [0, 1] in order, each covering its stage's weight's share.
void ExpectTiled(const std::vector<BuildStep>& steps) {
  ASSERT_FALSE(steps.empty());
  EXPECT_EQ(steps.front().begin, 0.0);
  EXPECT_EQ(steps.back().end, 1.0) << "exactly 1";
  double total = 0;
  for (const BuildStep& step : steps) total += BuildStageInfoOf(step.stage).weight;
  for (size_t i = 0; i < steps.size(); ++i) {
    EXPECT_LT(steps[i].begin, steps[i].end) << "step " << i;
    if (i > 0) {
      EXPECT_EQ(steps[i].begin, steps[i - 1].end) << "step " << i;
    }
    EXPECT_NEAR(steps[i].end - steps[i].begin, BuildStageInfoOf(steps[i].stage).weight / total,
                1e-12)
        << "step " << i;
  }
}

BuildPlan Plan(Recipe recipe, int64_t rows) {
  auto plan = PlanBuild(recipe, rows, 256, 1);
  EXPECT_THAT(plan, IsOk());
  return plan.ok() ? *plan : BuildPlan();
}

Recipe Kind(Recipe::Kind kind) {
  Recipe recipe;
  recipe.set_kind(kind);
  return recipe;
}

TEST(BuildStagesTest, TheTableHasOneRowPerStageInOrderWithAPositiveWeightAndItsOwnName) {
  std::set<std::string> names;
  for (size_t i = 0; i < sizeof(kBuildStages) / sizeof(kBuildStages[0]); ++i) {
    EXPECT_EQ(static_cast<size_t>(kBuildStages[i].stage), i);
    EXPECT_EQ(&BuildStageInfoOf(kBuildStages[i].stage), &kBuildStages[i]);
    EXPECT_GT(kBuildStages[i].weight, 0.0) << kBuildStages[i].name;
    EXPECT_TRUE(names.insert(kBuildStages[i].name).second) << kBuildStages[i].name;
  }
  EXPECT_EQ(BuildStageName(BuildStage::kTraining), "training");
}

TEST(BuildStagesTest, RvcAndFastScanLoadShuffleTrainAndPublish) {
  for (Recipe::Kind kind : {Recipe::KIND_RVC, Recipe::KIND_FASTSCAN}) {
    const std::vector<BuildStep> steps = BuildSteps(Plan(Kind(kind), 20000));
    EXPECT_THAT(Names(steps), ElementsAre("loading", "shuffling", "training", "publishing"));
    ExpectTiled(steps);
  }
}

TEST(BuildStagesTest, CompressionNormalisationAndExpansionAddTheirSteps) {
  Recipe recipe = Kind(Recipe::KIND_FASTSCAN);
  recipe.mutable_kmeans()->set_above_rows(10000);
  recipe.mutable_kmeans()->set_centroids(5000);
  recipe.mutable_query_expansion()->set_neighbours(3);
  const std::vector<BuildStep> steps = BuildSteps(Plan(recipe, 20000));
  EXPECT_THAT(Names(steps), ElementsAre("loading", "shuffling", "compressing", "normalizing",
                                        "expanding", "training", "publishing"));
  ExpectTiled(steps);

  Recipe cosine = Kind(Recipe::KIND_FACTORY);
  cosine.set_factory("IVF16,Flat");
  cosine.set_cosine(true);
  const std::vector<BuildStep> cosine_steps = BuildSteps(Plan(cosine, 20000));
  EXPECT_THAT(Names(cosine_steps),
              ElementsAre("loading", "shuffling", "normalizing", "training", "publishing"));
  ExpectTiled(cosine_steps);
}

TEST(BuildStagesTest, AutoTrainsAndEvaluatesEveryCandidateBeforeTheKeptOne) {
  const BuildPlan plan = Plan(Kind(Recipe::KIND_AUTO), 50000);
  ASSERT_GE(plan.candidates.size(), 3u);
  std::vector<std::string> expected = {"loading", "shuffling", "reference"};
  for (const CandidateIndex& candidate : plan.candidates) {
    expected.push_back("training");
    expected.insert(expected.end(), candidate.settings.size(), "evaluating");
  }
  expected.insert(expected.end(), {"training", "publishing"});
  const std::vector<BuildStep> steps = BuildSteps(plan);
  EXPECT_EQ(Names(steps), expected);
  ExpectTiled(steps);
}

TEST(BuildStagesTest, AnyNumberOfCandidatesEndsAtExactlyOne) {
  // Shares that are not binary fractions (thirds, sevenths) still end at 1, not 0.9999...
  for (int candidates = 1; candidates <= 9; ++candidates) {
    for (int settings = 1; settings <= 4; ++settings) {
      BuildPlan plan;
      plan.kind = Recipe::KIND_AUTO;
      plan.candidates.resize(candidates);
      for (CandidateIndex& candidate : plan.candidates) candidate.settings.resize(settings);
      const std::vector<BuildStep> steps = BuildSteps(plan);
      ASSERT_EQ(steps.size(), 3u + candidates * (1u + settings) + 2u);
      ExpectTiled(steps);
    }
  }
}

}  // namespace
}  // namespace timbre
