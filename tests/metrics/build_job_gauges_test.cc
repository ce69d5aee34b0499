#include "server/metrics/build_job_gauges.h"

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"
#include "tests/support/fake_build_runner.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::timbre::testing::ExpectPromtoolClean;
using ::timbre::testing::FakeBuildRunner;
using ::timbre::testing::IsOk;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::WaitFor;
using timbre::v1::BuildJob;

class BuildJobGaugesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    BuildJobQueue::Options options;
    options.builder = &runner_;
    options.jobs_dir = dir_.Join("jobs");
    auto queue = BuildJobQueue::Create(std::move(options));
    ASSERT_THAT(queue, IsOk());
    queue_ = *std::move(queue);
  }

  absl::StatusOr<BuildJob> Submit(const std::string& speaker) {
    BuildRequest request;
    request.speaker = speaker;
    return queue_->Submit(std::move(request));
  }

  std::string Expose() const {
    return prometheus::TextSerializer().Serialize(BuildJobGauges(queue_.get()).Collect());
  }

  ScratchDir dir_;
  FakeBuildRunner runner_;
  std::unique_ptr<BuildJobQueue> queue_;
};

TEST_F(BuildJobGaugesTest, EveryStateIsExposedFromTheStart) {
  const std::string text = Expose();
  ExpectPromtoolClean(text);
  for (const char* state : {"queued", "running", "succeeded", "failed", "cancelled"}) {
    EXPECT_THAT(text, HasSubstr(std::string("timbre_build_jobs{state=\"") + state + "\"} 0"));
  }
  EXPECT_THAT(text, Not(HasSubstr("unspecified")));
}

TEST_F(BuildJobGaugesTest, JobsAreCountedInTheirStateAtEachScrape) {
  ASSERT_THAT(Submit("a"), IsOk());
  runner_.WaitStarted();
  ASSERT_THAT(Submit("b"), IsOk());
  std::string text = Expose();
  EXPECT_THAT(text, HasSubstr("timbre_build_jobs{state=\"running\"} 1"));
  EXPECT_THAT(text, HasSubstr("timbre_build_jobs{state=\"queued\"} 1"));
  runner_.Release();
  ASSERT_TRUE(WaitFor([&] { return queue_->CountByState()[BuildJob::STATE_SUCCEEDED] == 2; }));
  text = Expose();
  ExpectPromtoolClean(text);
  EXPECT_THAT(text, HasSubstr("timbre_build_jobs{state=\"succeeded\"} 2"));
  EXPECT_THAT(text, HasSubstr("timbre_build_jobs{state=\"running\"} 0"));
  EXPECT_THAT(text, HasSubstr("timbre_build_jobs{state=\"queued\"} 0"));
}

TEST(BuildJobStateLabelTest, IsTheLowerCaseStateName) {
  EXPECT_EQ(BuildJobStateLabel(BuildJob::STATE_QUEUED), "queued");
  EXPECT_EQ(BuildJobStateLabel(BuildJob::STATE_SUCCEEDED), "succeeded");
  EXPECT_EQ(BuildJobStateLabel(BuildJob::STATE_CANCELLED), "cancelled");
}

}  // namespace
}  // namespace timbre
