#include "server/build/build_progress.h"

#include <string>
#include <utility>
#include <vector>

#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;
using timbre::v1::BuildReport;

// Records what the build tells it, as ("begin <stage>" or the message, fraction).
class RecordingObserver : public BuildObserver {
 public:
  bool cancelled() const override { return cancel; }
  void BeginStage(BuildStage stage, double fraction) override {
    calls.emplace_back("begin " + std::string(BuildStageName(stage)), fraction);
  }
  void Progress(double fraction, absl::string_view message) override {
    calls.emplace_back(std::string(message), fraction);
  }
  void UpdateReport(const BuildReport& report) override { last_report = report; }

  bool cancel = false;
  std::vector<std::pair<std::string, double>> calls;
  BuildReport last_report;
};

// Four steps of weights 5, 1, 60 and 5 (an rvc build).
std::vector<BuildStep> RvcSteps() {
  BuildPlan plan;
  plan.kind = timbre::v1::Recipe::KIND_RVC;
  plan.candidates.resize(1);
  return BuildSteps(plan);
}

TEST(BuildProgressTest, MapsEachStepsFractionsOntoItsShareOfTheBuild) {
  const std::vector<BuildStep> steps = RvcSteps();
  RecordingObserver observer;
  BuildReport report;
  BuildProgress progress(steps, &observer, &report);
  progress.Begin(BuildStage::kLoading);
  progress.Progress(0.5, "half");
  progress.Progress(1.0, "read");
  progress.Begin(BuildStage::kShuffling);
  progress.Begin(BuildStage::kTraining);
  progress.Progress(0.25, "quarter");
  progress.Begin(BuildStage::kPublishing);
  progress.Finish("published");
  const double loading_end = 5.0 / 71;
  EXPECT_THAT(observer.calls,
              ElementsAre(Pair("begin loading", 0.0),
                          Pair("half", ::testing::DoubleNear(loading_end / 2, 1e-12)),
                          Pair("read", steps[0].end),
                          Pair("begin shuffling", steps[1].begin),
                          Pair("begin training", steps[2].begin),
                          Pair("quarter", ::testing::DoubleNear(6.0 / 71 + 0.25 * 60 / 71, 1e-12)),
                          Pair("begin publishing", steps[3].begin),
                          Pair("published", 1.0)));
  EXPECT_EQ(steps[0].end, steps[1].begin);
}

TEST(BuildProgressTest, NeverGoesBackwardsWhateverAStepReports) {
  RecordingObserver observer;
  BuildReport report;
  BuildProgress progress(RvcSteps(), &observer, &report);
  progress.Begin(BuildStage::kLoading);
  progress.Progress(0.8, "ahead");
  progress.Progress(0.2, "behind");
  progress.Progress(-3, "negative");
  progress.Progress(7, "beyond");
  ASSERT_EQ(observer.calls.size(), 5u);
  EXPECT_EQ(observer.calls[2].second, observer.calls[1].second);
  EXPECT_EQ(observer.calls[3].second, observer.calls[1].second);
  EXPECT_EQ(observer.calls[4].second, RvcSteps()[0].end) << "clamped to the step's end";
}

TEST(BuildProgressTest, AStageThePlanDoesNotRunIsNotReported) {
  RecordingObserver observer;
  BuildReport report;
  BuildProgress progress(RvcSteps(), &observer, &report);
  progress.Begin(BuildStage::kLoading);
  progress.Begin(BuildStage::kCompressing);  // an rvc plan of a small set compresses nothing
  progress.Progress(1.0, "loading still");
  EXPECT_THAT(observer.calls,
              ElementsAre(Pair("begin loading", 0.0), Pair("loading still", RvcSteps()[0].end)));
}

TEST(BuildProgressTest, ReportsNothingBeforeTheFirstStageNorAfterTheEnd) {
  RecordingObserver observer;
  BuildReport report;
  BuildProgress progress(RvcSteps(), &observer, &report);
  progress.Progress(0.5, "too early");
  progress.Finish("done");
  progress.Progress(0.5, "too late");
  progress.Begin(BuildStage::kLoading);
  EXPECT_THAT(observer.calls, ElementsAre(Pair("done", 1.0)));
}

TEST(BuildProgressTest, TimesEveryStageIntoTheReport) {
  RecordingObserver observer;
  BuildReport report;
  {
    BuildProgress progress(RvcSteps(), &observer, &report);
    progress.Begin(BuildStage::kLoading);
    progress.Begin(BuildStage::kShuffling);
    progress.Begin(BuildStage::kTraining);  // a failed build ends here: its stage is still timed
  }
  std::vector<std::string> stages;
  for (const auto& time : report.stage_times()) {
    stages.push_back(time.stage());
    EXPECT_GE(time.seconds(), 0.0);
  }
  EXPECT_THAT(stages, ElementsAre("loading", "shuffling", "training"));
  EXPECT_EQ(observer.last_report.stage_times_size(), 3) << "the observer saw each";
}

TEST(BuildProgressTest, CancellationIsTheObserversAndNoObserverMeansNone) {
  RecordingObserver observer;
  BuildReport report;
  BuildProgress progress(RvcSteps(), &observer, &report);
  EXPECT_FALSE(progress.cancelled());
  observer.cancel = true;
  EXPECT_TRUE(progress.cancelled());

  BuildProgress silent(RvcSteps(), nullptr, &report);
  silent.Begin(BuildStage::kLoading);
  silent.Progress(0.5, "nobody listens");
  silent.Finish("done");
  EXPECT_FALSE(silent.cancelled());
}

}  // namespace
}  // namespace timbre
