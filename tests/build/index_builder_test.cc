#include "server/build/index_builder.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/build/demo_speaker.h"
#include "server/io/npy_file.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;
using timbre::v1::Recipe;

namespace fs = std::filesystem;

// Records every report of a build and cancels when told to at a given stage.
class RecordingObserver : public BuildObserver {
 public:
  struct Report {
    bool begins_stage;
    BuildStage stage;  // the stage running
    double fraction;
  };

  explicit RecordingObserver(std::optional<BuildStage> cancel_at = std::nullopt)
      : cancel_at_(cancel_at) {}
  bool cancelled() const override { return cancelled_; }
  void BeginStage(BuildStage stage, double fraction) override {
    stages.emplace_back(BuildStageName(stage));
    reports.push_back({true, stage, fraction});
    if (stage == cancel_at_) cancelled_ = true;
  }
  void Progress(double fraction, absl::string_view message) override {
    ASSERT_FALSE(reports.empty()) << "progress before the first stage";
    reports.push_back({false, reports.back().stage, fraction});
  }
  void UpdateReport(const timbre::v1::BuildReport& report) override {}

  std::vector<std::string> stages;
  std::vector<Report> reports;

 private:
  std::optional<BuildStage> cancel_at_;
  std::atomic<bool> cancelled_{false};
};

// Checks a finished build's reports against the table of build_stages.h: every fraction in
// [0, 1], never lower than the one before, the first stage at 0 and the last report exactly 1;
// each stage starts where the one before ended and covers its weight's share of the build.
void ExpectProgressFollowsTheTable(const RecordingObserver& observer) {
  const std::vector<RecordingObserver::Report>& reports = observer.reports;
  ASSERT_FALSE(reports.empty());
  ASSERT_TRUE(reports.front().begins_stage);
  EXPECT_EQ(reports.front().fraction, 0.0);
  EXPECT_EQ(reports.back().fraction, 1.0) << "exactly 1 at the end";
  std::vector<std::pair<BuildStage, double>> begins;  // each stage and where it began
  double total_weight = 0;
  for (size_t i = 0; i < reports.size(); ++i) {
    EXPECT_GE(reports[i].fraction, 0.0);
    EXPECT_LE(reports[i].fraction, 1.0);
    if (i > 0) {
      EXPECT_GE(reports[i].fraction, reports[i - 1].fraction) << "report " << i;
    }
    if (reports[i].begins_stage) {
      begins.emplace_back(reports[i].stage, reports[i].fraction);
      total_weight += BuildStageInfoOf(reports[i].stage).weight;
    }
  }
  for (size_t i = 0; i < begins.size(); ++i) {
    const double end = i + 1 < begins.size() ? begins[i + 1].second : 1.0;
    EXPECT_NEAR(end - begins[i].second, BuildStageInfoOf(begins[i].first).weight / total_weight,
                1e-12)
        << "share of step " << i << " (" << BuildStageName(begins[i].first) << ")";
  }
}

void WriteRows(const FrameMatrix& rows, const std::string& path) {
  NpyArray array;
  array.descr = "<f4";
  array.shape = {rows.rows, rows.dim};
  array.data.assign(reinterpret_cast<const char*>(rows.values.data()),
                    rows.values.size() * sizeof(float));
  ASSERT_THAT(WriteNpy(path, array), IsOk());
}

class IndexBuilderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_.Join("repo"));
    fs::create_directories(dir_.Join("import"));
    FeatureSetStore::Options store_options;
    store_options.root = dir_.Join("feature-sets");
    store_options.import_root = dir_.Join("import");
    store_ = *FeatureSetStore::Create(store_options);
    repository_ = *SpeakerRepository::Create({dir_.Join("repo")});
    IndexBuilder::Options options;
    options.feature_sets = store_.get();
    options.repository = repository_.get();
    builder_ = *IndexBuilder::Create(options);
  }

  // Imports `rows` as a one-file feature set.
  std::string AddSet(const FrameMatrix& rows, const std::string& name = "set") {
    fs::create_directories(dir_.Join("import/" + name));
    WriteRows(rows, dir_.Join("import/" + name + "/feats.npy"));
    auto info = store_->ImportDirectory(name);
    EXPECT_THAT(info, IsOk());
    return info->id;
  }

  BuildRequest Request(const std::string& set, Recipe recipe, const std::string& speaker = "alice") {
    BuildRequest request;
    request.job_id = "job-000000000001";
    request.speaker = speaker;
    request.feature_set_id = set;
    request.recipe = std::move(recipe);
    request.recipe.set_shuffle_seed(3);
    return request;
  }

  // The version directory of a published version.
  std::string VersionDir(const std::string& speaker, const std::string& version) {
    return dir_.Join(absl::StrCat("repo/", speaker, "/", version));
  }

  static Recipe Kind(Recipe::Kind kind) {
    Recipe recipe;
    recipe.set_kind(kind);
    return recipe;
  }

  ScratchDir dir_;
  std::unique_ptr<FeatureSetStore> store_;
  std::unique_ptr<SpeakerRepository> repository_;
  std::unique_ptr<IndexBuilder> builder_;
};

TEST_F(IndexBuilderTest, RvcRecipeReproducesTheIndexRvcWritesFromTheSameRows) {
  // tests/data/rvc_build: three feature files and the added_*.index RVC's train_index wrote
  // from them with np.random.seed(1729) before its shuffle (make_rvc_build_fixture.py).
  const std::string fixture = std::string(getenv("TIMBRE_TEST_DATA")) + "/rvc_build";
  for (const char* name : {"10.npy", "2.npy", "a.npy"}) {
    fs::create_directories(dir_.Join("import/rvc"));
    fs::copy_file(fixture + "/" + name, dir_.Join(absl::StrCat("import/rvc/", name)));
  }
  auto set = store_->ImportDirectory("rvc");
  ASSERT_THAT(set, IsOk());
  BuildRequest request = Request(set->id, Kind(Recipe::KIND_RVC));
  request.recipe.set_shuffle_seed(1729);
  RecordingObserver observer;
  auto report = builder_->Build(request, &observer);
  ASSERT_THAT(report, IsOk());
  EXPECT_EQ(report->version(), "1");
  EXPECT_EQ(report->description(), "IVF61,Flat");

  auto ours = FaissIndex::Load(VersionDir("alice", "1") + "/index.faiss");
  auto rvc = FaissIndex::Load(fixture + "/added_IVF61_Flat_nprobe_1_fixture_v1.index");
  ASSERT_THAT(ours, IsOk());
  ASSERT_THAT(rvc, IsOk());
  EXPECT_EQ((*ours)->description(), (*rvc)->description());
  EXPECT_EQ((*ours)->nprobe(), 1);
  ASSERT_EQ((*ours)->size(), (*rvc)->size());
  // Same rows in the same order: every id holds the same frame.
  for (int64_t id = 0; id < (*rvc)->size(); ++id) {
    ASSERT_EQ(std::memcmp((*ours)->StoredVector(id), (*rvc)->StoredVector(id), 256 * sizeof(float)), 0)
        << "id " << id;
  }
  // Same centroids and lists: every search gives the same neighbours.
  FrameMatrix queries = GenerateClusteredFrames(200, 256, 8, 99);
  std::vector<float> our_scores(200 * 8), rvc_scores(200 * 8);
  std::vector<int64_t> our_ids(200 * 8), rvc_ids(200 * 8);
  SearchParams params;
  ASSERT_THAT((*ours)->Search(queries.values.data(), 200, params, 1, our_scores.data(), our_ids.data()), IsOk());
  ASSERT_THAT((*rvc)->Search(queries.values.data(), 200, params, 1, rvc_scores.data(), rvc_ids.data()), IsOk());
  int same = 0;
  for (size_t i = 0; i < our_ids.size(); ++i) same += our_ids[i] == rvc_ids[i];
  EXPECT_GE(same, static_cast<int>(our_ids.size() * 99 / 100));
  EXPECT_THAT(observer.stages, ::testing::ElementsAre("loading", "shuffling", "training", "publishing"));
  ExpectProgressFollowsTheTable(observer);
}

TEST_F(IndexBuilderTest, FastScanRecipeKeepsExactVectorsInItsRefinement) {
  const FrameMatrix rows = GenerateClusteredFrames(3000, 256, 16, 1);
  RecordingObserver observer;
  auto report = builder_->Build(Request(AddSet(rows), Kind(Recipe::KIND_FASTSCAN)), &observer);
  ASSERT_THAT(report, IsOk());
  EXPECT_THAT(observer.stages, ::testing::ElementsAre("loading", "shuffling", "training", "publishing"));
  ExpectProgressFollowsTheTable(observer);
  // 8*sqrt(3000) = 438 lists would leave under 39 rows per list: clamped to 3000/39 = 76.
  EXPECT_EQ(report->description(), "IVF76,PQ128x4fs,RFlat");
  ASSERT_EQ(report->notes_size(), 1);
  EXPECT_EQ(report->k_factor(), 4);
  EXPECT_EQ(report->nprobe(), 4);
  EXPECT_FALSE(fs::exists(VersionDir("alice", "1") + "/vectors.f32")) << "RFlat stores the frames";
}

TEST_F(IndexBuilderTest, CompressedIndexWithoutRefinementGetsItsFramesBeside) {
  const FrameMatrix rows = GenerateClusteredFrames(3000, 256, 16, 2);
  Recipe recipe = Kind(Recipe::KIND_FACTORY);
  recipe.set_factory("IVF32,PQ32x4fs");
  ASSERT_THAT(builder_->Build(Request(AddSet(rows), recipe), nullptr), IsOk());
  IndexLoadOptions load;
  load.vectors_path = VersionDir("alice", "1") + "/vectors.f32";
  auto index = FaissIndex::Load(VersionDir("alice", "1") + "/index.faiss", load);
  ASSERT_THAT(index, IsOk());
  EXPECT_EQ((*index)->description(), "IVF32,PQ32x4fs");
  EXPECT_TRUE((*index)->stores_exact_vectors());
  // The frames beside are the shuffled rows, each id one of the uploaded frames exactly.
  const float* first = (*index)->StoredVector(0);
  bool found = false;
  for (int64_t r = 0; r < rows.rows && !found; ++r) {
    found = std::memcmp(first, rows.row(r), 256 * sizeof(float)) == 0;
  }
  EXPECT_TRUE(found);
}

TEST_F(IndexBuilderTest, CosineRecipeNormalisesAndKeepsTheOriginalFramesForBlending) {
  const FrameMatrix rows = GenerateClusteredFrames(3000, 256, 16, 3);
  Recipe recipe = Kind(Recipe::KIND_FACTORY);
  recipe.set_factory("IVF32,Flat");
  recipe.set_cosine(true);
  RecordingObserver observer;
  auto report = builder_->Build(Request(AddSet(rows), recipe), &observer);
  ASSERT_THAT(report, IsOk());
  EXPECT_THAT(observer.stages,
              ::testing::ElementsAre("loading", "shuffling", "normalizing", "training", "publishing"));
  ExpectProgressFollowsTheTable(observer);
  EXPECT_TRUE(report->inner_product());
  const std::string metadata = ::timbre::testing::ReadFile(VersionDir("alice", "1") + "/metadata.json");
  EXPECT_THAT(metadata, HasSubstr("\"normalize_queries\": true"));
  EXPECT_THAT(metadata, HasSubstr("vectors.f32"));
  EXPECT_EQ(fs::file_size(VersionDir("alice", "1") + "/vectors.f32"), 3000u * 256 * sizeof(float));
}

TEST_F(IndexBuilderTest, QueryExpansionRunsItsStage) {
  const FrameMatrix rows = GenerateClusteredFrames(2000, 256, 16, 4);
  Recipe recipe = Kind(Recipe::KIND_FACTORY);
  recipe.set_factory("IVF16,Flat");
  recipe.mutable_query_expansion()->set_neighbours(3);
  RecordingObserver observer;
  ASSERT_THAT(builder_->Build(Request(AddSet(rows), recipe), &observer), IsOk());
  EXPECT_THAT(observer.stages, ::testing::ElementsAre("loading", "shuffling", "normalizing",
                                                      "expanding", "training", "publishing"));
  ExpectProgressFollowsTheTable(observer);
}

TEST_F(IndexBuilderTest, LargeSetsAreCompressedByKmeans) {
  const FrameMatrix rows = GenerateClusteredFrames(4000, 256, 16, 5);
  Recipe recipe = Kind(Recipe::KIND_RVC);
  recipe.mutable_kmeans()->set_above_rows(3000);
  recipe.mutable_kmeans()->set_centroids(800);
  recipe.mutable_kmeans()->set_iterations(2);
  RecordingObserver observer;
  auto report = builder_->Build(Request(AddSet(rows), recipe), &observer);
  ASSERT_THAT(report, IsOk());
  EXPECT_TRUE(report->compressed());
  EXPECT_EQ(report->input_rows(), 4000u);
  EXPECT_EQ(report->indexed_rows(), 800u);
  EXPECT_EQ(report->description(), "IVF20,Flat");
  EXPECT_THAT(observer.stages,
              ::testing::ElementsAre("loading", "shuffling", "compressing", "training", "publishing"));
  ExpectProgressFollowsTheTable(observer);
}

TEST_F(IndexBuilderTest, AutoMeasuresEveryCandidateAndKeepsOneMeetingTheTarget) {
  const FrameMatrix rows = GenerateClusteredFrames(6000, 256, 32, 6);
  Recipe recipe = Kind(Recipe::KIND_AUTO);
  recipe.set_min_blend_cosine(0.99);
  const BuildRequest request = Request(AddSet(rows), recipe);
  auto plan = builder_->Plan(request);
  ASSERT_THAT(plan, IsOk());
  RecordingObserver observer;
  auto report = builder_->Build(request, &observer);
  ASSERT_THAT(report, IsOk());
  ASSERT_GE(report->candidates_size(), 8);
  ExpectProgressFollowsTheTable(observer);
  // A reference, then per candidate a training and an evaluation per setting, then the kept one.
  std::vector<std::string> expected = {"loading", "shuffling", "reference"};
  for (const CandidateIndex& candidate : plan->candidates) {
    expected.push_back("training");
    expected.insert(expected.end(), candidate.settings.size(), "evaluating");
  }
  expected.insert(expected.end(), {"training", "publishing"});
  EXPECT_EQ(observer.stages, expected);
  const auto& chosen = report->candidates(report->chosen_candidate());
  EXPECT_GE(chosen.mean_blend_cosine(), 0.99);
  for (const auto& candidate : report->candidates()) {
    EXPECT_GT(candidate.recall_at_k(), 0.0);
    EXPECT_LE(candidate.recall_at_k(), 1.0);
    EXPECT_GT(candidate.p50_call_ms(), 0.0);
    EXPECT_GE(candidate.list_imbalance(), 1.0) << "every candidate is an IVF index";
    if (candidate.mean_blend_cosine() >= 0.99) {
      EXPECT_GE(candidate.p50_call_ms(), chosen.p50_call_ms()) << "the fastest faithful one is kept";
    }
  }
  EXPECT_EQ(report->description(), chosen.description());
  EXPECT_EQ(report->nprobe(), chosen.nprobe());
  const std::string metadata = ::timbre::testing::ReadFile(VersionDir("alice", "1") + "/metadata.json");
  EXPECT_THAT(metadata, HasSubstr("mean_blend_cosine"));
  auto index = FaissIndex::Load(VersionDir("alice", "1") + "/index.faiss");
  ASSERT_THAT(index, IsOk());
  EXPECT_EQ((*index)->size(), 6000) << "the held-out frames are in the published index too";
}

// Speech-like frames (tests/bench/speech_features.py: eSpeak NG speech through a fixed random
// network; a stand-in for HuBERT features, not HuBERT): 3,000 frames of dim 256, float16.
TEST_F(IndexBuilderTest, AutoOnSpeechLikeFramesMeetsItsTargetOrSaysNoneDoes) {
  fs::create_directories(dir_.Join("import/speech"));
  fs::copy_file(::timbre::testing::DataPath("speech_like_3000x256_f16.npy"),
                dir_.Join("import/speech/0000.npy"));
  auto set = store_->ImportDirectory("speech");
  ASSERT_THAT(set, IsOk());
  auto report = builder_->Build(Request(set->id, Kind(Recipe::KIND_AUTO)), nullptr);
  ASSERT_THAT(report, IsOk());
  ASSERT_GE(report->candidates_size(), 2);
  EXPECT_GT(report->rvc_unpruned_p50_call_ms(), 0.0);
  EXPECT_DOUBLE_EQ(report->max_call_ms(), report->rvc_unpruned_p50_call_ms())
      << "the default bound: RVC's recipe, the first candidate, without the pruned steps";
  const double target = report->min_blend_cosine();
  EXPECT_DOUBLE_EQ(target, 0.9997) << "the default target";
  const auto& chosen = report->candidates(report->chosen_candidate());
  const bool any_within =
      std::any_of(report->candidates().begin(), report->candidates().end(),
                  [&](const auto& c) { return c.p50_call_ms() <= report->max_call_ms(); });
  if (!any_within) {
    // Possible where timbre's own steps run slower than faiss's scan, as under a sanitizer.
    for (const auto& candidate : report->candidates()) {
      EXPECT_GE(candidate.p50_call_ms(), chosen.p50_call_ms()) << "the fastest one";
    }
    EXPECT_THAT(report->notes(), ::testing::Contains(HasSubstr("no candidate ran within")));
    return;
  }
  EXPECT_LE(chosen.p50_call_ms(), report->max_call_ms());
  bool any_faithful_within = false;
  for (const auto& candidate : report->candidates()) {
    if (candidate.p50_call_ms() > report->max_call_ms()) continue;
    if (candidate.mean_blend_cosine() >= target) {
      any_faithful_within = true;
      EXPECT_GE(candidate.p50_call_ms(), chosen.p50_call_ms()) << "the fastest faithful one";
    } else if (chosen.mean_blend_cosine() < target) {
      EXPECT_GE(chosen.mean_blend_cosine(), candidate.mean_blend_cosine()) << "the most faithful";
    }
  }
  if (any_faithful_within) {
    EXPECT_GE(chosen.mean_blend_cosine(), target);
    EXPECT_THAT(report->notes(), ::testing::Not(::testing::Contains(HasSubstr("no candidate"))));
  } else {
    EXPECT_THAT(report->notes(), ::testing::Contains(HasSubstr("no candidate reached")));
  }
}

TEST_F(IndexBuilderTest, CancelledBuildPublishesNothing) {
  const FrameMatrix rows = GenerateClusteredFrames(3000, 256, 16, 7);
  for (BuildStage stage : {BuildStage::kShuffling, BuildStage::kTraining, BuildStage::kPublishing}) {
    const std::string name(BuildStageName(stage));
    RecordingObserver observer(stage);
    EXPECT_THAT(builder_->Build(Request(AddSet(rows, name), Kind(Recipe::KIND_RVC)), &observer),
                StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")))
        << name;
    EXPECT_LT(observer.reports.back().fraction, 1.0) << "a cancelled build never reaches 1";
  }
  EXPECT_FALSE(fs::exists(dir_.Join("repo/alice/1")));
}

TEST_F(IndexBuilderTest, ChangedFeatureFilesFailTheBuildAndPublishNothing) {
  const FrameMatrix rows = GenerateClusteredFrames(3000, 256, 16, 8);
  const std::string set = AddSet(rows);
  WriteRows(GenerateClusteredFrames(3000, 256, 16, 9), dir_.Join("import/set/feats.npy"));
  EXPECT_THAT(builder_->Build(Request(set, Kind(Recipe::KIND_RVC)), nullptr),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
  EXPECT_FALSE(fs::exists(dir_.Join("repo/alice")) && fs::exists(dir_.Join("repo/alice/1")));
}

TEST_F(IndexBuilderTest, PlanRefusesBadSpeakerUnknownSetAndBadRecipe) {
  const std::string set = AddSet(GenerateClusteredFrames(1000, 256, 8, 10));
  EXPECT_THAT(builder_->Plan(Request(set, Kind(Recipe::KIND_RVC), "../evil")),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(builder_->Plan(Request("fs-0000000000000000", Kind(Recipe::KIND_RVC))),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  Recipe recipe = Kind(Recipe::KIND_FACTORY);
  recipe.set_factory("IVF100,Flat");  // 1000 rows < 39 * 100
  EXPECT_THAT(builder_->Plan(Request(set, recipe)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("39 training rows per list")));
}

TEST(IndexBuilderCreateTest, NeedsAStoreAndARepository) {
  EXPECT_THAT(IndexBuilder::Create({}), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
}

}  // namespace
}  // namespace timbre
