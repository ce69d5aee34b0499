#include "server/build/build_recipe.h"

#include <cmath>

#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::StatusIs;
using timbre::v1::Recipe;

Recipe Kind(Recipe::Kind kind) {
  Recipe recipe;
  recipe.set_kind(kind);
  return recipe;
}

std::vector<std::string> Descriptions(const BuildPlan& plan) {
  std::vector<std::string> out;
  for (const CandidateIndex& candidate : plan.candidates) out.push_back(candidate.train.description);
  return out;
}

TEST(RvcListCountTest, MatchesRvcFormula) {
  // min(int(16 * sqrt(N)), N // 39), as infer-web.py's train_index computes it.
  EXPECT_EQ(RvcListCount(130000), 3333);
  EXPECT_EQ(RvcListCount(10000), 256);
  EXPECT_EQ(RvcListCount(2400), 61);
  EXPECT_EQ(RvcListCount(10), 1);
  for (int64_t n : {1000, 50000, 123457, 1000000}) {
    const int64_t expected = std::min<int64_t>(static_cast<int64_t>(16 * std::sqrt(double(n))), n / 39);
    EXPECT_EQ(RvcListCount(n), expected) << n;
  }
}

TEST(PlanBuildTest, RvcIsIvfFlatL2Nprobe1WithRvcCompression) {
  auto plan = PlanBuild(Kind(Recipe::KIND_RVC), 130000, 768, 42);
  ASSERT_THAT(plan, IsOk());
  EXPECT_EQ(plan->kind, Recipe::KIND_RVC);
  EXPECT_FALSE(plan->compress);
  EXPECT_EQ(plan->shuffle_seed, 42u);
  ASSERT_THAT(Descriptions(*plan), ElementsAre("IVF3333,Flat"));
  EXPECT_EQ(plan->candidates[0].train.metric, Metric::kL2);
  EXPECT_EQ(plan->candidates[0].train.nprobe, 1);
  EXPECT_FALSE(plan->normalize);
}

TEST(PlanBuildTest, LargeSetsAreCompressedToTenThousandCentroidsAsRvcDoes) {
  auto plan = PlanBuild(Kind(Recipe::KIND_RVC), 400000, 768, 1);
  ASSERT_THAT(plan, IsOk());
  EXPECT_TRUE(plan->compress);
  EXPECT_EQ(plan->kmeans_centroids, 10000);
  EXPECT_EQ(plan->indexed_rows, 10000);
  // RVC: 256 lists after k-means.
  EXPECT_THAT(Descriptions(*plan), ElementsAre("IVF256,Flat"));
  EXPECT_FALSE(PlanBuild(Kind(Recipe::KIND_RVC), 200000, 768, 1)->compress);
}

TEST(PlanBuildTest, KmeansSettingsApply) {
  Recipe recipe = Kind(Recipe::KIND_RVC);
  recipe.mutable_kmeans()->set_above_rows(1000);
  recipe.mutable_kmeans()->set_centroids(500);
  recipe.mutable_kmeans()->set_iterations(3);
  auto plan = PlanBuild(recipe, 5000, 256, 1);
  ASSERT_THAT(plan, IsOk());
  EXPECT_TRUE(plan->compress);
  EXPECT_EQ(plan->indexed_rows, 500);
  EXPECT_EQ(plan->kmeans_iterations, 3);
  recipe.mutable_kmeans()->set_disabled(true);
  EXPECT_FALSE(PlanBuild(recipe, 5000, 256, 1)->compress);
  recipe.mutable_kmeans()->set_disabled(false);
  recipe.mutable_kmeans()->set_centroids(6000);
  EXPECT_THAT(PlanBuild(recipe, 5000, 256, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not compress")));
}

TEST(PlanBuildTest, RecipeSeedWinsOverTheDefault) {
  Recipe recipe = Kind(Recipe::KIND_RVC);
  recipe.set_shuffle_seed(7);
  EXPECT_EQ(PlanBuild(recipe, 5000, 256, 99)->shuffle_seed, 7u);
}

TEST(PlanBuildTest, FastScanDefaultsToEightRootNListsWithRefinement) {
  auto plan = PlanBuild(Kind(Recipe::KIND_FASTSCAN), 130000, 768, 1);
  ASSERT_THAT(plan, IsOk());
  const int64_t nlist = static_cast<int64_t>(8 * std::sqrt(130000.0));
  EXPECT_THAT(Descriptions(*plan), ElementsAre(absl::StrCat("IVF", nlist, ",PQ384x4fs,RFlat")));
  EXPECT_EQ(plan->candidates[0].train.nprobe, 4);
  EXPECT_EQ(plan->candidates[0].train.k_factor, 4);
}

TEST(PlanBuildTest, FastScanTakesNlistNprobeAndKFactor) {
  Recipe recipe = Kind(Recipe::KIND_FASTSCAN);
  recipe.set_nlist(2000);
  recipe.set_nprobe(8);
  recipe.set_k_factor(16);
  auto plan = PlanBuild(recipe, 130000, 256, 1);
  ASSERT_THAT(plan, IsOk());
  EXPECT_THAT(Descriptions(*plan), ElementsAre("IVF2000,PQ128x4fs,RFlat"));
  EXPECT_EQ(plan->candidates[0].train.nprobe, 8);
  EXPECT_EQ(plan->candidates[0].train.k_factor, 16);
}

TEST(PlanBuildTest, FastScanRefusesNlistOutsideFourToSixteenRootN) {
  Recipe recipe = Kind(Recipe::KIND_FASTSCAN);
  recipe.set_nlist(100);  // 4*sqrt(130000) = 1442
  EXPECT_THAT(PlanBuild(recipe, 130000, 768, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("[4*sqrt(N), 16*sqrt(N)]")));
  recipe.set_nlist(6000);
  EXPECT_THAT(PlanBuild(recipe, 130000, 768, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("recipe.nlist 6000")));
}

TEST(PlanBuildTest, FastScanClampsDerivedListsToTrainingRowsWithANote) {
  auto plan = PlanBuild(Kind(Recipe::KIND_FASTSCAN), 2000, 256, 1);
  ASSERT_THAT(plan, IsOk());
  EXPECT_THAT(Descriptions(*plan), ElementsAre("IVF51,PQ128x4fs,RFlat"));
  ASSERT_EQ(plan->notes.size(), 1u);
  EXPECT_THAT(plan->notes[0], HasSubstr("using 51"));
}

TEST(PlanBuildTest, FastScanNeedsEvenDimAndEnoughRows) {
  EXPECT_THAT(PlanBuild(Kind(Recipe::KIND_FASTSCAN), 5000, 255, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("even dim")));
  EXPECT_THAT(PlanBuild(Kind(Recipe::KIND_FASTSCAN), 300, 256, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("4-bit PQ")));
}

TEST(PlanBuildTest, FactoryTakesAnyStringAndMetric) {
  Recipe recipe = Kind(Recipe::KIND_FACTORY);
  recipe.set_factory("IVF64,PQ32x4fs");
  recipe.set_inner_product(true);
  recipe.set_nprobe(3);
  auto plan = PlanBuild(recipe, 5000, 256, 1);
  ASSERT_THAT(plan, IsOk());
  EXPECT_THAT(Descriptions(*plan), ElementsAre("IVF64,PQ32x4fs"));
  EXPECT_EQ(plan->candidates[0].train.metric, Metric::kInnerProduct);
  EXPECT_EQ(plan->candidates[0].train.nprobe, 3);
  EXPECT_EQ(plan->candidates[0].train.k_factor, 0) << "no refinement, no k_factor";
}

TEST(PlanBuildTest, FactoryRefusesBadStringsAndTooFewRowsPerList) {
  Recipe recipe = Kind(Recipe::KIND_FACTORY);
  EXPECT_THAT(PlanBuild(recipe, 5000, 256, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs recipe.factory")));
  recipe.set_factory("IVF64,Bogus");
  EXPECT_THAT(PlanBuild(recipe, 5000, 256, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("IVF64,Bogus")));
  recipe.set_factory("IVF1024,Flat");
  EXPECT_THAT(PlanBuild(recipe, 5000, 256, 1),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("faiss wants about 39 training rows per list")));
  recipe.set_factory("IVF64,Flat");
  recipe.set_nprobe(65);
  EXPECT_THAT(PlanBuild(recipe, 5000, 256, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exceeds the 64 lists")));
}

TEST(PlanBuildTest, CosineAndQueryExpansionNormaliseWithInnerProduct) {
  Recipe recipe = Kind(Recipe::KIND_FASTSCAN);
  recipe.set_cosine(true);
  auto plan = PlanBuild(recipe, 5000, 256, 1);
  ASSERT_THAT(plan, IsOk());
  EXPECT_TRUE(plan->normalize);
  EXPECT_EQ(plan->candidates[0].train.metric, Metric::kInnerProduct);

  recipe.set_cosine(false);
  recipe.mutable_query_expansion()->set_neighbours(4);
  plan = PlanBuild(recipe, 5000, 256, 1);
  ASSERT_THAT(plan, IsOk());
  EXPECT_TRUE(plan->normalize);
  EXPECT_EQ(plan->expansion_neighbours, 4);
  EXPECT_FLOAT_EQ(plan->expansion_alpha, 3.0f);
  recipe.mutable_query_expansion()->set_alpha(-1);
  EXPECT_THAT(PlanBuild(recipe, 5000, 256, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("alpha")));
}

TEST(PlanBuildTest, RvcRefusesCosineAndQueryExpansion) {
  Recipe recipe = Kind(Recipe::KIND_RVC);
  recipe.set_cosine(true);
  EXPECT_THAT(PlanBuild(recipe, 5000, 256, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("RVC's L2 index")));
  recipe.set_cosine(false);
  recipe.mutable_query_expansion()->set_neighbours(3);
  EXPECT_THAT(PlanBuild(recipe, 5000, 256, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("RVC's L2 index")));
}

TEST(PlanBuildTest, AutoGoesFromRvcListsToFewListsWithManyProbesAndFastScan) {
  auto plan = PlanBuild(Kind(Recipe::KIND_AUTO), 130000, 768, 1);
  ASSERT_THAT(plan, IsOk());
  EXPECT_EQ(plan->held_out_frames, 1000);
  EXPECT_DOUBLE_EQ(plan->min_blend_cosine, 0.9997);
  EXPECT_DOUBLE_EQ(plan->max_call_ms, 0.0) << "the default bound, resolved after measuring";
  const int64_t n = 130000 - 1000;
  const int64_t rvc = RvcListCount(n);
  const double root = std::sqrt(double(n));
  EXPECT_THAT(
      Descriptions(*plan),
      ElementsAre(absl::StrCat("IVF", rvc, ",Flat"),
                  absl::StrCat("IVF", static_cast<int64_t>(4 * root), ",Flat"),
                  absl::StrCat("IVF", static_cast<int64_t>(root), ",Flat"),
                  absl::StrCat("IVF", static_cast<int64_t>(8 * root), ",PQ384x4fs,RFlat"),
                  absl::StrCat("PCA128,IVF", static_cast<int64_t>(4 * root), ",SQ8,RFlat")));
  auto probes = [&](int candidate) {
    std::vector<int> nprobe;
    for (const SearchSetting& s : plan->candidates[candidate].settings) nprobe.push_back(s.nprobe);
    return nprobe;
  };
  EXPECT_THAT(probes(0), ElementsAre(1, 2, 4, 8, 16)) << "RVC's recipe first, at nprobe 1";
  EXPECT_THAT(probes(1), ElementsAre(1, 2, 4, 8, 16, 32));
  EXPECT_THAT(probes(2), ElementsAre(4, 8, 16, 32));
  EXPECT_THAT(probes(3), ElementsAre(4, 8, 8, 16, 32));
  EXPECT_EQ(plan->candidates[3].settings[0].k_factor, 4);
  EXPECT_EQ(plan->candidates[3].settings[2].k_factor, 8);
  EXPECT_EQ(plan->candidates[0].settings[0].k_factor, 0);
  EXPECT_THAT(probes(4), ElementsAre(8, 16, 24, 32));
  EXPECT_EQ(plan->candidates[4].settings[3].k_factor, 4);
}

TEST(PlanBuildTest, AutoProjectsASixthOfTheDimensionsFrom128Up) {
  auto last = [](int dim) {
    auto plan = PlanBuild(Kind(Recipe::KIND_AUTO), 20000, dim, 1);
    EXPECT_THAT(plan, IsOk());
    return plan.ok() ? plan->candidates.back().train.description : "";
  };
  EXPECT_THAT(last(256), ::testing::StartsWith("PCA64,IVF"));
  EXPECT_THAT(last(768), ::testing::StartsWith("PCA128,IVF"));
  EXPECT_THAT(last(64), ::testing::Not(::testing::HasSubstr("PCA"))) << "too few dimensions";
  // Too few rows to train a 768-d PCA on: no projected candidate.
  auto few = PlanBuild(Kind(Recipe::KIND_AUTO), 3000, 768, 1);
  ASSERT_THAT(few, IsOk());
  EXPECT_THAT(few->candidates.back().train.description,
              ::testing::Not(::testing::HasSubstr("PCA")));
}

TEST(PlanBuildTest, AutoMeasuresEachSettingOnceWhenListsAreFewerThanProbes) {
  // 660 rows, 16 held out: 644 to train on leave 16 lists of 39 rows, so nprobe 32 becomes 16.
  auto plan = PlanBuild(Kind(Recipe::KIND_AUTO), 660, 8, 1);
  ASSERT_THAT(plan, IsOk());
  ASSERT_EQ(plan->candidates.size(), 2u) << "the list counts all clamp to 16";
  const CandidateIndex& fastscan = plan->candidates[1];
  EXPECT_EQ(fastscan.train.description, "IVF16,PQ4x4fs,RFlat");
  std::vector<std::pair<int, int>> settings;
  for (const SearchSetting& s : fastscan.settings) settings.emplace_back(s.nprobe, s.k_factor);
  EXPECT_THAT(settings, ElementsAre(std::pair(4, 4), std::pair(8, 4), std::pair(8, 8),
                                    std::pair(16, 8)));
}

TEST(PlanBuildTest, AutoValidatesTargetAndSize) {
  Recipe recipe = Kind(Recipe::KIND_AUTO);
  recipe.set_min_blend_cosine(1.5);
  EXPECT_THAT(PlanBuild(recipe, 130000, 768, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("min_blend_cosine")));
  EXPECT_THAT(PlanBuild(Kind(Recipe::KIND_AUTO), 500, 256, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("held-out")));
  recipe.set_min_blend_cosine(0.999);
  for (double bound : {-1.0, std::nan(""), HUGE_VAL}) {
    recipe.set_max_call_ms(bound);
    EXPECT_THAT(PlanBuild(recipe, 130000, 768, 1),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("recipe.max_call_ms")))
        << bound;
  }
}

TEST(PlanBuildTest, RefusesUnknownKindTinySetsAndStrayNlist) {
  EXPECT_THAT(PlanBuild(Recipe(), 5000, 256, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("recipe.kind")));
  EXPECT_THAT(PlanBuild(Kind(Recipe::KIND_RVC), 10, 256, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("10 rows")));
  Recipe recipe = Kind(Recipe::KIND_RVC);
  recipe.set_nlist(100);
  EXPECT_THAT(PlanBuild(recipe, 5000, 256, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("only to the fastscan")));
}

TEST(RecipeKindNameTest, NamesEveryKindAsTheMetadataRecordsIt) {
  EXPECT_EQ(RecipeKindName(Recipe::KIND_RVC), "rvc");
  EXPECT_EQ(RecipeKindName(Recipe::KIND_FASTSCAN), "fastscan");
  EXPECT_EQ(RecipeKindName(Recipe::KIND_FACTORY), "factory");
  EXPECT_EQ(RecipeKindName(Recipe::KIND_AUTO), "auto");
  EXPECT_EQ(RecipeKindName(Recipe::KIND_UNSPECIFIED), "unspecified");
}

TEST(PlanBuildTest, ThePlanCarriesTheRecipeKind) {
  for (Recipe::Kind kind : {Recipe::KIND_RVC, Recipe::KIND_FASTSCAN, Recipe::KIND_AUTO}) {
    auto plan = PlanBuild(Kind(kind), 50000, 256, 1);
    ASSERT_THAT(plan, IsOk()) << Recipe::Kind_Name(kind);
    EXPECT_EQ(plan->kind, kind);
  }
}

TEST(PlanBuildTest, FieldsLeftAtZeroTakeTheDefaultsBuildJobProtoStates) {
  // build_job.proto states these defaults in its comments; this keeps them and the planner's equal.
  EXPECT_EQ(PlanBuild(Kind(Recipe::KIND_RVC), 20000, 256, 1)->candidates[0].train.nprobe, 1);
  Recipe factory = Kind(Recipe::KIND_FACTORY);
  factory.set_factory("IVF16,PQ16x4fs,RFlat");
  auto factory_plan = PlanBuild(factory, 20000, 256, 1);
  ASSERT_THAT(factory_plan, IsOk());
  EXPECT_EQ(factory_plan->candidates[0].train.nprobe, 1);
  EXPECT_EQ(factory_plan->candidates[0].train.k_factor, 4);

  auto fastscan = PlanBuild(Kind(Recipe::KIND_FASTSCAN), 200000, 256, 1);
  ASSERT_THAT(fastscan, IsOk());
  EXPECT_FALSE(fastscan->compress) << "compression starts above 200,000 rows";
  EXPECT_THAT(Descriptions(*fastscan), ElementsAre("IVF3577,PQ128x4fs,RFlat")) << "8*sqrt(N) lists";
  EXPECT_EQ(fastscan->candidates[0].train.nprobe, 4);
  EXPECT_EQ(fastscan->candidates[0].train.k_factor, 4);

  auto compressed = PlanBuild(Kind(Recipe::KIND_RVC), 200001, 256, 1);
  ASSERT_THAT(compressed, IsOk());
  EXPECT_TRUE(compressed->compress);
  EXPECT_EQ(compressed->kmeans_centroids, 10000);
  EXPECT_EQ(compressed->kmeans_iterations, 10);

  Recipe expansion = Kind(Recipe::KIND_FASTSCAN);
  expansion.mutable_query_expansion()->set_neighbours(3);
  EXPECT_EQ(PlanBuild(expansion, 20000, 256, 1)->expansion_alpha, 3.0f);

  auto automatic = PlanBuild(Kind(Recipe::KIND_AUTO), 100000, 256, 1);
  ASSERT_THAT(automatic, IsOk());
  EXPECT_EQ(automatic->min_blend_cosine, 0.9997);
  EXPECT_EQ(automatic->held_out_frames, 1000) << "min(1000, rows/50)";
  EXPECT_EQ(PlanBuild(Kind(Recipe::KIND_AUTO), 5000, 256, 1)->held_out_frames, 100);
  EXPECT_EQ(PlanBuild(Kind(Recipe::KIND_AUTO), 700, 256, 1)->held_out_frames, 16) << "at least 16";
}

}  // namespace
}  // namespace timbre
