// End-to-end tests of the IndexBuilder service: a real server on a loopback port, feature sets
// uploaded through the client library, builds followed over WatchJob, and Blend calls against the
// versions they publish.
#include <atomic>
#include <filesystem>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "prometheus/registry.h"
#include "server/build/build_job_queue.h"
#include "server/build/demo_speaker.h"
#include "server/build/feature_set_store.h"
#include "server/build/file_work_queue.h"
#include "server/io/frame_codec.h"
#include "server/io/npy_file.h"
#include "server/metrics/server_metrics.h"
#include "server/rpc/index_builder_service.h"
#include "server/timbre_server.h"
#include "tests/support/fake_build_runner.h"
#include "tests/support/server_test_support.h"
#include "tests/support/test_support.h"
#include "timbre/builder_client.h"
#include "timbre/timbre_client.h"

namespace timbre {
namespace {

using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;
using timbre::v1::BuildJob;

namespace fs = std::filesystem;

std::string NpyBytes(const FrameMatrix& rows, const std::string& path) {
  NpyArray array;
  array.descr = "<f4";
  array.shape = {rows.rows, rows.dim};
  array.data.assign(reinterpret_cast<const char*>(rows.values.data()),
                    rows.values.size() * sizeof(float));
  EXPECT_THAT(WriteNpy(path, array), IsOk());
  return ::timbre::testing::ReadFile(path);
}

FrameMatrix Slice(const FrameMatrix& rows, int64_t begin, int64_t end) {
  FrameMatrix out;
  out.rows = end - begin;
  out.dim = rows.dim;
  out.values.assign(rows.row(begin), rows.row(end));
  return out;
}

class IndexBuilderServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_.Join("repo"));
    fs::create_directories(dir_.Join("import"));
    TimbreServer::Options options = testing::LocalServerOptions(dir_.Join("repo"));
    options.import_root = dir_.Join("import");
    server_ = testing::StartServer(options);
    ASSERT_NE(server_, nullptr);
    const TimbreClient::Options client_options = testing::LocalClientOptions(server_->port());
    builder_ = *BuilderClient::Create(client_options);
    client_ = *TimbreClient::Create(client_options);
    channel_ = *MakeChannel(client_options);
  }

  // Writes `rows` as three .npy files in a new directory and uploads it.
  v1::FeatureSet Upload(const FrameMatrix& rows, const std::string& name = "feats") {
    const std::string dir = dir_.Join(name);
    fs::create_directories(dir);
    const int64_t third = rows.rows / 3;
    NpyBytes(Slice(rows, 0, third), dir + "/b.npy");
    NpyBytes(Slice(rows, third, 2 * third), dir + "/a.npy");
    NpyBytes(Slice(rows, 2 * third, rows.rows), dir + "/c.npy");
    auto set = builder_->Upload(dir, 64 << 10, [](int64_t, int64_t) {});
    EXPECT_THAT(set, IsOk());
    return set.ok() ? *set : v1::FeatureSet();
  }

  // Builds and follows the job to its end.
  BuildJob BuildAndWait(const std::string& speaker, const std::string& set, v1::Recipe recipe,
                        std::vector<BuildJob>* seen = nullptr) {
    v1::BuildIndexRequest request;
    request.set_speaker(speaker);
    request.set_feature_set_id(set);
    *request.mutable_recipe() = std::move(recipe);
    auto job = builder_->Build(request);
    EXPECT_THAT(job, IsOk());
    if (!job.ok()) return BuildJob();
    auto last = builder_->WatchJob(job->id(), [&](const BuildJob& record) {
      if (seen != nullptr) seen->push_back(record);
    });
    EXPECT_THAT(last, IsOk());
    return last.ok() ? *last : BuildJob();
  }

  absl::StatusOr<v1::BlendResponse> BlendOnce(const std::string& speaker, const FrameMatrix& frames) {
    v1::BlendRequest request;
    request.set_speaker(speaker);
    *request.mutable_frames() = MakeFrames(v1::DTYPE_FLOAT32, frames.rows, frames.dim,
                                           EncodeFrames(DType::kFloat32, frames.values));
    return client_->Blend(request);
  }

  static v1::Recipe Rvc() {
    v1::Recipe recipe;
    recipe.set_kind(v1::Recipe::KIND_RVC);
    return recipe;
  }

  ScratchDir dir_;
  std::unique_ptr<TimbreServer> server_;
  std::unique_ptr<BuilderClient> builder_;
  std::unique_ptr<TimbreClient> client_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(IndexBuilderServiceTest, UploadBuildAndBlend) {
  const FrameMatrix rows = GenerateClusteredFrames(3000, 256, 16, 1);
  const v1::FeatureSet set = Upload(rows);
  EXPECT_EQ(set.rows(), 3000u);
  EXPECT_EQ(set.dim(), 256u);
  ASSERT_EQ(set.files_size(), 3);
  EXPECT_EQ(set.files(0).name(), "a.npy") << "files in RVC's sorted order";

  std::vector<BuildJob> seen;
  const BuildJob job = BuildAndWait("alice", set.id(), Rvc(), &seen);
  ASSERT_EQ(job.state(), BuildJob::STATE_SUCCEEDED) << job.error();
  EXPECT_EQ(job.report().version(), "1");
  EXPECT_EQ(job.report().description(), "IVF76,Flat");
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen.back().state(), BuildJob::STATE_SUCCEEDED);

  auto blended = BlendOnce("alice", Slice(rows, 0, 16));
  ASSERT_THAT(blended, IsOk());
  EXPECT_EQ(blended->version(), "1");
  auto info = client_->GetSpeaker("alice");
  ASSERT_THAT(info, IsOk());
  EXPECT_EQ(info->recipe(), "rvc");
  auto jobs = builder_->ListJobs();
  ASSERT_THAT(jobs, IsOk());
  ASSERT_EQ(jobs->jobs_size(), 1);
  EXPECT_EQ(jobs->jobs(0).id(), job.id());
}

TEST_F(IndexBuilderServiceTest, AutoChoiceShowsInGetSpeaker) {
  const v1::FeatureSet set = Upload(GenerateClusteredFrames(4000, 256, 16, 2));
  v1::Recipe recipe;
  recipe.set_kind(v1::Recipe::KIND_AUTO);
  recipe.set_min_blend_cosine(0.99);
  const BuildJob job = BuildAndWait("bob", set.id(), recipe);
  ASSERT_EQ(job.state(), BuildJob::STATE_SUCCEEDED) << job.error();
  auto info = client_->GetSpeaker("bob");
  ASSERT_THAT(info, IsOk());
  EXPECT_EQ(info->recipe(), "auto");
  EXPECT_EQ(info->evaluation().description(), info->description());
  EXPECT_GE(info->evaluation().mean_blend_cosine(), 0.99);
  EXPECT_GT(info->evaluation().p50_call_ms(), 0.0);
}

TEST_F(IndexBuilderServiceTest, PublishingANewVersionFailsNoConcurrentBlend) {
  const FrameMatrix rows = GenerateClusteredFrames(3000, 256, 16, 3);
  const v1::FeatureSet set = Upload(rows);
  ASSERT_EQ(BuildAndWait("alice", set.id(), Rvc()).state(), BuildJob::STATE_SUCCEEDED);
  std::atomic<bool> stop{false};
  std::atomic<int> calls{0}, failures{0};
  std::atomic<bool> saw_new{false};
  absl::Status first_failure;  // written once, by the caller that counts the first failure
  std::vector<std::thread> callers;
  for (int t = 0; t < 2; ++t) {
    callers.emplace_back([&, t] {
      const FrameMatrix block = Slice(rows, 16 * t, 16 * t + 16);
      while (!stop) {
        auto response = BlendOnce("alice", block);
        ++calls;
        if (!response.ok()) {
          if (failures++ == 0) first_failure = response.status();
        } else if (response->version() == "2") {
          saw_new = true;
        }
      }
    });
  }
  absl::Cleanup stop_callers = [&] {  // on every way out, assertions included
    stop = true;
    for (std::thread& caller : callers) caller.join();
  };
  v1::Recipe fastscan;
  fastscan.set_kind(v1::Recipe::KIND_FASTSCAN);
  const BuildJob second = BuildAndWait("alice", set.id(), fastscan);
  ASSERT_TRUE(::timbre::testing::WaitFor([&] { return saw_new.load(); }));
  std::move(stop_callers).Invoke();
  EXPECT_EQ(second.state(), BuildJob::STATE_SUCCEEDED) << second.error();
  EXPECT_GT(calls.load(), 10);
  EXPECT_EQ(failures.load(), 0) << first_failure;
}

TEST_F(IndexBuilderServiceTest, CancelStopsABuildAndPublishesNothing) {
  const v1::FeatureSet set = Upload(GenerateClusteredFrames(30000, 256, 64, 4));
  v1::Recipe recipe = Rvc();
  recipe.mutable_kmeans()->set_above_rows(20000);
  recipe.mutable_kmeans()->set_centroids(5000);
  recipe.mutable_kmeans()->set_iterations(200);  // far longer than the test waits
  v1::BuildIndexRequest request;
  request.set_speaker("carol");
  request.set_feature_set_id(set.id());
  *request.mutable_recipe() = recipe;
  auto job = builder_->Build(request);
  ASSERT_THAT(job, IsOk());
  bool cancelled = false;
  auto last = builder_->WatchJob(job->id(), [&](const BuildJob& record) {
    if (record.stage() == "compressing" && !cancelled) {
      cancelled = true;
      EXPECT_THAT(builder_->CancelJob(record.id()), IsOk());
    }
  });
  ASSERT_THAT(last, IsOk());
  EXPECT_EQ(last->state(), BuildJob::STATE_CANCELLED);
  EXPECT_THAT(client_->GetSpeaker("carol"), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_THAT(builder_->CancelJob(job->id()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already ended")));
}

TEST_F(IndexBuilderServiceTest, BadBuildRequestsAreRefused) {
  const v1::FeatureSet set = Upload(GenerateClusteredFrames(1000, 256, 8, 6));
  v1::BuildIndexRequest request;
  request.set_speaker("alice");
  request.set_feature_set_id("fs-0000000000000000");
  *request.mutable_recipe() = Rvc();
  EXPECT_THAT(builder_->Build(request), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  request.set_feature_set_id(set.id());
  request.set_speaker("../alice");
  EXPECT_THAT(builder_->Build(request), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("alice")));
  request.set_speaker("alice");
  request.mutable_recipe()->set_kind(v1::Recipe::KIND_FACTORY);
  request.mutable_recipe()->set_factory("IVF8,Nonsense");
  EXPECT_THAT(builder_->Build(request), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("IVF8,Nonsense")));
  request.mutable_recipe()->set_factory("IVF100,Flat");
  EXPECT_THAT(builder_->Build(request),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("39 training rows per list")));
  EXPECT_THAT(builder_->GetJob("job-000000000000"), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_THAT(builder_->WatchJob("bogus", [](const BuildJob&) {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("malformed")));
  auto jobs = builder_->ListJobs();
  ASSERT_THAT(jobs, IsOk());
  EXPECT_EQ(jobs->jobs_size(), 0);
}

TEST_F(IndexBuilderServiceTest, ImportReadsOnlyInsideTheImportRoot) {
  fs::create_directories(dir_.Join("import/spk"));
  NpyBytes(GenerateClusteredFrames(500, 256, 4, 7), dir_.Join("import/spk/0.npy"));
  auto set = builder_->Import("spk");
  ASSERT_THAT(set, IsOk());
  EXPECT_EQ(set->rows(), 500u);
  EXPECT_THAT(builder_->Import("../repo"), StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
  EXPECT_THAT(builder_->Import("/etc"), StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
  EXPECT_THAT(builder_->DeleteFeatureSet(set->id()), IsOk());
  EXPECT_THAT(builder_->DeleteFeatureSet(set->id()), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST(IndexBuilderServiceFileWorkTest, AHeldImportHoldsUpNoOtherCall) {
  // The import's file work is held on the server's file worker; meanwhile health, speakers,
  // Blend and the in-memory builder calls are answered, and the import then ends as usual.
  ScratchDir dir, imports;
  fs::create_directories(imports.Join("spk"));
  NpyBytes(GenerateClusteredFrames(500, 256, 4, 7), imports.Join("spk/0.npy"));
  std::atomic<bool> hold{true};
  absl::Notification held, release;
  TimbreServer::Options options = testing::FixtureServerOptions(dir);
  options.import_root = imports.path();
  options.before_file_work = [&] {
    if (!hold.exchange(false)) return;  // holds the first piece of file work only
    held.Notify();
    release.WaitForNotification();
  };
  std::unique_ptr<TimbreServer> server = testing::StartServer(options);
  ASSERT_NE(server, nullptr);
  const TimbreClient::Options client_options = testing::LocalClientOptions(server->port());
  auto builder = *BuilderClient::Create(client_options);
  auto client = testing::MakeClient(client_options);

  absl::StatusOr<v1::FeatureSet> imported;
  std::thread import([&] { imported = builder->Import("spk"); });
  const bool was_held = held.WaitForNotificationWithTimeout(absl::Seconds(20));
  EXPECT_TRUE(was_held) << "the import reached the file worker";
  if (was_held) {
    EXPECT_THAT(testing::CheckHealth(server->port(), "timbre.v1.IndexBuilder"),
                ::timbre::testing::IsOkAndHolds(grpc::health::v1::HealthCheckResponse::SERVING));
    auto speakers = client->ListSpeakers();
    ASSERT_THAT(speakers, IsOk());
    EXPECT_EQ(speakers->speakers_size(), 1);
    const testing::FixtureQueries queries = testing::ReadFixtureQueries();
    EXPECT_THAT(client->Blend(testing::FixtureBlendRequest(queries, 16)), IsOk());
    auto sets = builder->ListFeatureSets();
    ASSERT_THAT(sets, IsOk());
    EXPECT_EQ(sets->feature_sets_size(), 0) << "the held import has stored nothing yet";
  }
  release.Notify();
  import.join();
  ASSERT_THAT(imported, IsOk());
  EXPECT_EQ(imported->rows(), 500u);
  EXPECT_EQ(builder->ListFeatureSets()->feature_sets_size(), 1);
  // Errors keep their statuses on the worker.
  EXPECT_THAT(builder->Import(dir.path()), StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
  EXPECT_THAT(builder->Import("missing"), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_THAT(builder->DeleteFeatureSet("fs-0000000000000000"),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_THAT(builder->DeleteFeatureSet(imported->id()), IsOk());
}

// The service alone on a loopback port, over a file work queue of one waiting task whose worker
// a test holds.
class FullFileWorkQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(imports_.Join("spk"));
    NpyBytes(GenerateClusteredFrames(100, 256, 4, 7), imports_.Join("spk/0.npy"));
    FeatureSetStore::Options store_options;
    store_options.root = dir_.Join("feature-sets");
    store_options.import_root = imports_.path();
    store_ = *FeatureSetStore::Create(store_options);
    BuildJobQueue::Options queue_options;
    queue_options.builder = &runner_;
    queue_options.jobs_dir = dir_.Join("jobs");
    jobs_ = *BuildJobQueue::Create(std::move(queue_options));
    FileWorkQueue::Options work_options;
    work_options.max_queued = 1;
    work_options.before_task = [this] {
      if (!hold_.exchange(false)) return;
      held_.Notify();
      release_.WaitForNotification();
    };
    file_work_ = *FileWorkQueue::Create(std::move(work_options));
    metrics_ = std::make_unique<ServerMetrics>(registry_);
    service_ = std::make_unique<IndexBuilderService>(store_.get(), jobs_.get(), file_work_.get(),
                                                     metrics_.get(), absl::InfiniteDuration());
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::IndexBuilder::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                                                          grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (!release_.HasBeenNotified()) release_.Notify();
    if (server_ != nullptr) server_->Shutdown();
  }

  grpc::Status Import(v1::FeatureSet* set) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::ImportFeaturesRequest request;
    request.set_path("spk");
    return stub_->ImportFeatures(&context, request, set);
  }

  ScratchDir dir_, imports_;
  testing::FakeBuildRunner runner_;
  std::unique_ptr<FeatureSetStore> store_;
  std::unique_ptr<BuildJobQueue> jobs_;
  std::atomic<bool> hold_{true};
  absl::Notification held_, release_;
  std::unique_ptr<FileWorkQueue> file_work_;
  prometheus::Registry registry_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<IndexBuilderService> service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::IndexBuilder::Stub> stub_;
};

TEST_F(FullFileWorkQueueTest, CallsAreRefusedAtOnceAndTheQueuedOnesStillFinish) {
  v1::FeatureSet first_set, second_set;
  grpc::Status first, second;
  std::thread running([&] { first = Import(&first_set); });
  ASSERT_TRUE(held_.WaitForNotificationWithTimeout(absl::Seconds(20)));
  // The queue's one place: a deletion that waits behind the held import.
  std::thread waiting([&] {
    grpc::ClientContext context;
    v1::DeleteFeatureSetRequest request;
    request.set_id("fs-0000000000000000");
    v1::DeleteFeatureSetResponse response;
    second = stub_->DeleteFeatureSet(&context, request, &response);
  });
  ASSERT_TRUE(::timbre::testing::WaitFor([&] { return file_work_->waiting() == 1; }))
      << "the deletion takes the queue's place";

  v1::FeatureSet refused_set;
  const grpc::Status refused = Import(&refused_set);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("overloaded"));
  grpc::ClientContext upload_context;
  v1::FeatureSet upload_set;
  auto upload = stub_->UploadFeatures(&upload_context, &upload_set);
  upload->WritesDone();
  const grpc::Status upload_refused = upload->Finish();
  EXPECT_EQ(upload_refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(upload_refused.error_message(), HasSubstr("overloaded"));
  grpc::ClientContext build_context;
  v1::BuildIndexRequest build;
  v1::BuildJob job;
  EXPECT_EQ(stub_->BuildIndex(&build_context, build, &job).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);

  release_.Notify();
  running.join();
  waiting.join();
  EXPECT_TRUE(first.ok()) << first.error_message();
  EXPECT_EQ(first_set.rows(), 100u);
  EXPECT_EQ(second.error_code(), grpc::StatusCode::NOT_FOUND) << second.error_message();
  EXPECT_EQ(store_->List().size(), 1u) << "the refused import stored nothing";
}

}  // namespace
}  // namespace timbre
