// WatchJobReactor through gRPC: a real server on a loopback port runs small builds while
// clients follow them. A watch streams the job's records in order and ends after the final one;
// a finished job answers its final record at once; an unknown or malformed id ends the watch
// with its status; a client that stops watching leaves the build running.
#include "server/rpc/watch_job_reactor.h"

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/feature_set_test_support.h"
#include "tests/support/server_test_support.h"
#include "timbre/builder_client.h"

namespace timbre {
namespace {

using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;
using timbre::v1::BuildJob;

namespace fs = std::filesystem;

class WatchJobReactorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_.Join("repo"));
    server_ = testing::StartServer(testing::LocalServerOptions(dir_.Join("repo")));
    ASSERT_NE(server_, nullptr);
    const TimbreClient::Options options = testing::LocalClientOptions(server_->port());
    auto builder = BuilderClient::Create(options);
    ASSERT_THAT(builder, IsOk());
    builder_ = *std::move(builder);
    auto channel = MakeChannel(options);
    ASSERT_THAT(channel, IsOk());
    stub_ = v1::IndexBuilder::NewStub(*channel);
    // 4,000 rows of 256-d: an RVC build of a few lists, done in well under a second.
    testing::WriteFile(dir_.Join("features/0.npy"), testing::Float32Npy(4000, 256, 1.0f));
    auto set = builder_->Upload(dir_.Join("features"), 1 << 16, [](int64_t, int64_t) {});
    ASSERT_THAT(set, IsOk());
    set_id_ = set->id();
  }

  // Starts an RVC build for `speaker`; returns its job id ("" on failure, recorded).
  std::string StartBuild(const std::string& speaker) {
    v1::BuildIndexRequest request;
    request.set_speaker(speaker);
    request.set_feature_set_id(set_id_);
    request.mutable_recipe()->set_kind(v1::Recipe::KIND_RVC);
    auto job = builder_->Build(request);
    EXPECT_THAT(job, IsOk());
    return job.ok() ? job->id() : "";
  }

  ScratchDir dir_;
  std::unique_ptr<TimbreServer> server_;
  std::unique_ptr<BuilderClient> builder_;
  std::unique_ptr<v1::IndexBuilder::Stub> stub_;
  std::string set_id_;
};

TEST_F(WatchJobReactorTest, StreamsTheJobInOrderAndEndsAfterItsFinalRecord) {
  const std::string id = StartBuild("alice");
  std::vector<BuildJob> seen;
  auto last = builder_->WatchJob(id, [&](const BuildJob& record) { seen.push_back(record); });
  ASSERT_THAT(last, IsOk());
  EXPECT_EQ(last->state(), BuildJob::STATE_SUCCEEDED) << last->error();
  ASSERT_FALSE(seen.empty());
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].id(), id);
    if (i > 0) {
      EXPECT_GE(seen[i].fraction(), seen[i - 1].fraction()) << "record " << i;
    }
    // Only the last record has a final state: the stream ends with it.
    EXPECT_EQ(IsFinalJobState(seen[i].state()), i + 1 == seen.size()) << "record " << i;
  }
  EXPECT_EQ(seen.back().state(), BuildJob::STATE_SUCCEEDED);
}

TEST_F(WatchJobReactorTest, FinishedJobAnswersItsFinalRecordAtOnce) {
  const std::string id = StartBuild("alice");
  ASSERT_THAT(builder_->WatchJob(id, [](const BuildJob&) {}), IsOk());
  std::vector<BuildJob> seen;
  auto last = builder_->WatchJob(id, [&](const BuildJob& record) { seen.push_back(record); });
  ASSERT_THAT(last, IsOk());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].state(), BuildJob::STATE_SUCCEEDED);
  EXPECT_EQ(seen[0].fraction(), last->fraction());
}

TEST_F(WatchJobReactorTest, UnknownOrMalformedIdEndsTheWatchWithItsStatus) {
  EXPECT_THAT(builder_->WatchJob("job-000000000000", [](const BuildJob&) {}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("job-000000000000")));
  EXPECT_THAT(builder_->WatchJob("bogus", [](const BuildJob&) {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("malformed")));
}

TEST_F(WatchJobReactorTest, ClientThatStopsWatchingLeavesTheBuildRunning) {
  const std::string id = StartBuild("alice");
  {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::WatchJobRequest request;
    request.set_id(id);
    auto reader = stub_->WatchJob(&context, request);
    BuildJob first;
    ASSERT_TRUE(reader->Read(&first));
    EXPECT_EQ(first.id(), id);
    context.TryCancel();
    const grpc::Status status = reader->Finish();
    // A build that ended before its first record was sent ends the watch itself.
    if (!IsFinalJobState(first.state())) {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
    }
  }
  auto last = builder_->WatchJob(id, [](const BuildJob&) {});
  ASSERT_THAT(last, IsOk());
  EXPECT_EQ(last->state(), BuildJob::STATE_SUCCEEDED) << last->error();
}

}  // namespace
}  // namespace timbre
