// End-to-end tests of timbre-server's assembly: a real server on a loopback port, called through
// the client library, the health service and the Prometheus endpoint.
#include "server/timbre_server.h"

#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "server/build/demo_speaker.h"
#include "server/faiss/faiss_index.h"
#include "server/io/frame_codec.h"
#include "server/io/npy_file.h"
#include "server/serving/speaker_repository.h"
#include "tests/support/feature_set_test_support.h"
#include "tests/support/server_test_support.h"
#include "timbre/builder_client.h"
#include "timbre/timbre_client.h"

namespace timbre {
namespace {

using ::testing::_;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::IsOkAndHolds;
using ::timbre::testing::CheckHealth;
using ::timbre::testing::DataPath;
using ::timbre::testing::FixtureServerOptions;
using ::timbre::testing::kFixtureIndex;
using ::timbre::testing::Pack;
using ::timbre::testing::ReadFloats;
using ::timbre::testing::ScrapeMetrics;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;

std::vector<float> Unpack(const v1::Frames& frames) {
  std::vector<float> values(static_cast<size_t>(frames.num_frames()) * frames.dim());
  if (frames.dtype() == v1::DTYPE_FLOAT16) {
    for (size_t i = 0; i < values.size(); ++i) {
      uint16_t half;
      std::memcpy(&half, frames.data().data() + 2 * i, 2);
      values[i] = HalfToFloat(half);
    }
  } else {
    std::memcpy(values.data(), frames.data().data(), values.size() * 4);
  }
  return values;
}

// Options of a server of `repo` on a loopback port picked by the system, without rescans; the
// metrics endpoint only if `metrics` (it takes ~2 s to stop).
TimbreServer::Options LoopbackOptions(const std::string& repo, bool metrics) {
  TimbreServer::Options options;
  options.repo = repo;
  options.host = "127.0.0.1";
  options.port = 0;
  options.metrics_host = "127.0.0.1";
  options.metrics_port = metrics ? 0 : -1;
  options.poll_interval = absl::ZeroDuration();
  return options;
}

// Starts a server with `options` and a client of it.
void StartServerAndClient(const TimbreServer::Options& options,
                          std::unique_ptr<TimbreServer>* server,
                          std::unique_ptr<TimbreClient>* client) {
  *server = timbre::testing::StartServer(options);
  ASSERT_NE(*server, nullptr);
  *client = timbre::testing::MakeClient(timbre::testing::LocalClientOptions((*server)->port()));
  ASSERT_NE(*client, nullptr);
}

class TimbreServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    timbre::testing::WriteFile(repo_.Join("broken/added_IVF1_Flat_nprobe_1_x_v2.index"),
                               "this is not a faiss index");
    queries_ = ReadFloats("rvc_fixture_queries.npy", &rows_, &dim_);
    TimbreServer::Options options = FixtureServerOptions(repo_);
    options.metrics_host = "127.0.0.1";
    options.metrics_port = with_metrics_ ? 0 : -1;  // the endpoint takes ~2 s to stop
    options.max_frames_per_call = 100;
    options.mmap_indexes = mmap_;
    StartServerAndClient(options, &server_, &client_);
  }

  v1::BlendRequest FixtureRequest() const {
    v1::BlendRequest request;
    request.set_speaker("rvc");
    *request.mutable_frames() = MakeFrames(v1::DTYPE_FLOAT32, rows_, dim_, Pack(queries_));
    return request;
  }

  // The fixture's blend equals RVC's numpy result.
  void ExpectBlendMatchesRvc() {
    int64_t rows;
    int dim;
    const std::vector<float> expected = ReadFloats("rvc_fixture_expected.npy", &rows, &dim);
    auto response = client_->Blend(FixtureRequest());
    ASSERT_THAT(response, IsOk());
    EXPECT_EQ(response->version(), kFixtureIndex);
    EXPECT_EQ(response->frames().dtype(), v1::DTYPE_FLOAT32);
    ASSERT_EQ(response->frames().num_frames(), rows);
    ASSERT_EQ(response->frames().dim(), static_cast<uint32_t>(dim));
    const std::vector<float> got = Unpack(response->frames());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], expected[i], 1e-5f * (1.0f + std::fabs(expected[i]))) << "value " << i;
    }
    EXPECT_EQ(response->timing().batch_frames(), rows);
  }

  bool with_metrics_ = false;
  bool mmap_ = false;
  ScratchDir repo_;
  std::unique_ptr<TimbreServer> server_;
  std::unique_ptr<TimbreClient> client_;
  std::vector<float> queries_;
  int64_t rows_ = 0;
  int dim_ = 0;
};

TEST_F(TimbreServerTest, BlendMatchesRvcNumpyOnRvcWrittenIndex) { ExpectBlendMatchesRvc(); }

class TimbreServerMmapTest : public TimbreServerTest {
 protected:
  TimbreServerMmapTest() { mmap_ = true; }
};

TEST_F(TimbreServerMmapTest, MemoryMappedIndexServesTheSameBlend) {
  ExpectBlendMatchesRvc();
  auto rvc = client_->GetSpeaker("rvc");
  ASSERT_THAT(rvc, IsOk());
  EXPECT_EQ(rvc->mapped_bytes(), std::filesystem::file_size(DataPath(kFixtureIndex)));
  EXPECT_LT(rvc->memory_bytes(), 1000u * 256 * 4);  // the vectors stay in the mapped file
}

TEST_F(TimbreServerTest, Float16InFloat16Out) {
  // The same frames as float16 and, widened back, as float32: the float16 answer is the float32
  // answer rounded to float16.
  std::string half = EncodeFrames(DType::kFloat16, queries_);
  std::vector<float> widened(queries_.size());
  for (size_t i = 0; i < widened.size(); ++i) widened[i] = HalfToFloat(FloatToHalf(queries_[i]));
  v1::BlendRequest request = FixtureRequest();
  *request.mutable_frames() = MakeFrames(v1::DTYPE_FLOAT16, rows_, dim_, half);
  auto half_response = client_->Blend(request);
  ASSERT_THAT(half_response, IsOk());
  EXPECT_EQ(half_response->frames().dtype(), v1::DTYPE_FLOAT16);
  EXPECT_EQ(half_response->frames().data().size(), half.size());
  *request.mutable_frames() = MakeFrames(v1::DTYPE_FLOAT32, rows_, dim_, Pack(widened));
  auto full_response = client_->Blend(request);
  ASSERT_THAT(full_response, IsOk());
  const std::vector<float> got = Unpack(half_response->frames());
  const std::vector<float> full = Unpack(full_response->frames());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i], HalfToFloat(FloatToHalf(full[i]))) << "value " << i;
  }
}

TEST_F(TimbreServerTest, SearchReturnsRvcNeighboursAndVectors) {
  int64_t rows;
  int k;
  const std::vector<float> expected_ids = ReadFloats("rvc_fixture_ids.npy", &rows, &k);
  v1::SearchRequest request;
  request.set_speaker("rvc");
  *request.mutable_frames() = MakeFrames(v1::DTYPE_FLOAT32, rows_, dim_, Pack(queries_));
  request.set_include_vectors(true);
  auto response = client_->Search(request);
  ASSERT_THAT(response, IsOk());
  ASSERT_EQ(response->k(), 8u);
  ASSERT_EQ(response->ids_size(), rows * k);
  for (int i = 0; i < response->ids_size(); ++i) {
    EXPECT_EQ(response->ids(i), static_cast<int64_t>(expected_ids[i])) << "neighbour " << i;
  }
  ASSERT_EQ(response->vectors().num_frames(), static_cast<uint32_t>(rows * k));
  // The vector of a neighbour is at the distance the server reported from its query.
  const std::vector<float> vectors = Unpack(response->vectors());
  for (int i = 0; i < 3; ++i) {
    double distance = 0;
    for (int c = 0; c < dim_; ++c) {
      const double d = queries_[i * dim_ + c] - vectors[static_cast<size_t>(i * k) * dim_ + c];
      distance += d * d;
    }
    EXPECT_NEAR(distance, response->distances(i * k), 1e-3 * distance);
  }
}

TEST_F(TimbreServerTest, BadInputGetsClearErrors) {
  auto blend = [&](const std::function<void(v1::BlendRequest&)>& edit) {
    v1::BlendRequest request = FixtureRequest();
    edit(request);
    return client_->Blend(request).status();
  };
  EXPECT_THAT(blend([](v1::BlendRequest& r) { r.set_speaker("nobody"); }),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("speaker 'nobody' not found")));
  EXPECT_THAT(blend([](v1::BlendRequest& r) { r.set_speaker("../etc"); }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must not start with '.'")));
  EXPECT_THAT(blend([](v1::BlendRequest& r) { r.set_speaker("broken"); }),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("failed to load")));
  EXPECT_THAT(blend([&](v1::BlendRequest& r) {
                r.mutable_frames()->set_num_frames(rows_ * 2);
                r.mutable_frames()->set_dim(dim_ / 2);
              }),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("frames have dim 128, index has dim 256")));
  EXPECT_THAT(blend([](v1::BlendRequest& r) { r.mutable_frames()->mutable_data()->pop_back(); }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bytes but")));
  EXPECT_THAT(blend([](v1::BlendRequest& r) {
                r.mutable_frames()->set_num_frames(0);
                r.mutable_frames()->clear_data();
              }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no frames")));
  EXPECT_THAT(blend([&](v1::BlendRequest& r) {
                std::vector<float> bad = queries_;
                bad[dim_ + 3] = std::numeric_limits<float>::quiet_NaN();
                r.mutable_frames()->set_data(Pack(bad));
              }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("frame 1, column 3")));
  EXPECT_THAT(blend([&](v1::BlendRequest& r) {
                std::vector<float> bad = queries_;
                bad[0] = std::numeric_limits<float>::infinity();
                r.mutable_frames()->set_data(Pack(bad));
              }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be finite")));
  EXPECT_THAT(blend([](v1::BlendRequest& r) { r.mutable_options()->set_k(5000); }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("k is 5000")));
  EXPECT_THAT(blend([](v1::BlendRequest& r) { r.mutable_options()->set_index_rate(1.5f); }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("index_rate is 1.5")));
  EXPECT_THAT(blend([](v1::BlendRequest& r) { r.mutable_options()->set_nprobe(26); }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("the index has 25 lists")));
  EXPECT_THAT(blend([](v1::BlendRequest& r) {
                r.mutable_frames()->set_dtype(v1::DTYPE_UNSPECIFIED);
              }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("DTYPE_UNSPECIFIED")));
  EXPECT_THAT(blend([&](v1::BlendRequest& r) {
                std::vector<float> many(static_cast<size_t>(101) * dim_, 0.5f);
                *r.mutable_frames() = MakeFrames(v1::DTYPE_FLOAT32, 101, dim_, Pack(many));
              }),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("101 frames; the server's limit is 100")));
  // The server is still serving after all of that.
  EXPECT_THAT(client_->Blend(FixtureRequest()), IsOk());
}

TEST_F(TimbreServerTest, SpeakersReportStateAndIndexFigures) {
  auto speakers = client_->ListSpeakers();
  ASSERT_THAT(speakers, IsOk());
  ASSERT_EQ(speakers->speakers_size(), 2);
  const v1::SpeakerInfo& broken = speakers->speakers(0);
  EXPECT_EQ(broken.name(), "broken");
  EXPECT_EQ(broken.state(), v1::SpeakerInfo::STATE_FAILED);
  EXPECT_THAT(broken.error(), HasSubstr("not a readable faiss index"));
  auto rvc = client_->GetSpeaker("rvc");
  ASSERT_THAT(rvc, IsOk());
  EXPECT_EQ(rvc->state(), v1::SpeakerInfo::STATE_LOADED);
  EXPECT_EQ(rvc->dim(), 256u);
  EXPECT_EQ(rvc->num_vectors(), 1000u);
  EXPECT_EQ(rvc->description(), "IVF25,Flat");
  EXPECT_EQ(rvc->metric(), v1::METRIC_L2);
  EXPECT_EQ(rvc->nprobe(), 1u);
  EXPECT_EQ(rvc->nlist(), 25u);
  EXPECT_EQ(rvc->version(), kFixtureIndex);
  EXPECT_GT(rvc->memory_bytes(), 1000u * 256 * 4);
  EXPECT_THAT(client_->GetSpeaker("nobody").status(), StatusIs(absl::StatusCode::kNotFound, HasSubstr("nobody")));
}

TEST_F(TimbreServerTest, HealthReportsServingOnceSpeakersAreLoaded) {
  // StartServer waited for the first scan; the server and each service are SERVING.
  EXPECT_THAT(CheckHealth(server_->port(), ""),
              IsOkAndHolds(grpc::health::v1::HealthCheckResponse::SERVING));
  EXPECT_THAT(CheckHealth(server_->port(), "timbre.v1.Timbre"),
              IsOkAndHolds(grpc::health::v1::HealthCheckResponse::SERVING));
  EXPECT_THAT(CheckHealth(server_->port(), "timbre.v1.Nothing"),
              StatusIs(absl::StatusCode::kNotFound, _));
}

// Holds a server's first repository scan until Release(), through
// TimbreServer::Options::before_first_scan. The scan goes on after 60 s at the latest (a test
// that fails before Release() must not hang the server's destructor).
class FirstScanGate {
 public:
  ~FirstScanGate() { Release(); }
  TimbreServer::Options Hold(TimbreServer::Options options) {
    options.before_first_scan = [this] {
      released_.WaitForNotificationWithTimeout(absl::Seconds(60));
    };
    return options;
  }
  void Release() {
    if (!released_.HasBeenNotified()) released_.Notify();
  }

 private:
  absl::Notification released_;
};

TEST(TimbreServerStartupTest, NotServingAndUnavailableUntilTheRepositoryHasBeenScanned) {
  ScratchDir repo;
  auto repository = SpeakerRepository::Create({repo.path()});
  ASSERT_THAT(repository, IsOk());
  auto version = (*repository)->PublishVersion("rvc", {}, [](const std::string& dir) {
    std::filesystem::copy_file(DataPath(kFixtureIndex), dir + "/" + kDefaultIndexFileName);
    return absl::OkStatus();
  });
  ASSERT_THAT(version, IsOk());
  FirstScanGate first_scan;
  auto server =
      TimbreServer::Start(first_scan.Hold(LoopbackOptions(repo.path(), /*metrics=*/false)));
  ASSERT_THAT(server, IsOk());
  const int port = (*server)->port();
  for (const std::string service : {"", "timbre.v1.Timbre", "timbre.v1.IndexBuilder"}) {
    EXPECT_THAT(CheckHealth(port, service),
                IsOkAndHolds(grpc::health::v1::HealthCheckResponse::NOT_SERVING))
        << "service '" << service << "'";
  }
  auto client = timbre::testing::MakeClient(timbre::testing::LocalClientOptions(port));
  ASSERT_NE(client, nullptr);
  const auto not_scanned = StatusIs(absl::StatusCode::kUnavailable, HasSubstr("not been scanned"));
  const timbre::testing::FixtureQueries queries = timbre::testing::ReadFixtureQueries();
  EXPECT_THAT(client->Blend(timbre::testing::FixtureBlendRequest(queries, 16)), not_scanned);
  EXPECT_THAT(client->ListSpeakers(), not_scanned);
  EXPECT_THAT(client->GetSpeaker("rvc"), not_scanned);
  EXPECT_FALSE((*server)->WaitUntilServing(absl::ZeroDuration()));

  first_scan.Release();
  ASSERT_TRUE((*server)->WaitUntilServing(absl::Seconds(60)));
  for (const std::string service : {"", "timbre.v1.Timbre", "timbre.v1.IndexBuilder"}) {
    EXPECT_THAT(CheckHealth(port, service),
                IsOkAndHolds(grpc::health::v1::HealthCheckResponse::SERVING))
        << "service '" << service << "'";
  }
  EXPECT_THAT(client->Blend(timbre::testing::FixtureBlendRequest(queries, 16)), IsOk());
  EXPECT_THAT(client->GetSpeaker("nobody"), StatusIs(absl::StatusCode::kNotFound, _));
}

TEST(TimbreServerStartupTest, DrainDuringTheFirstScanNeverReportsServing) {
  ScratchDir repo;
  FirstScanGate first_scan;
  auto server =
      TimbreServer::Start(first_scan.Hold(LoopbackOptions(repo.path(), /*metrics=*/false)));
  ASSERT_THAT(server, IsOk());
  EXPECT_FALSE((*server)->WaitUntilServing(absl::ZeroDuration()));
  (*server)->Drain(absl::ZeroDuration(), absl::Seconds(1));
  first_scan.Release();  // the scan goes on and ends after the drain
  // The scan finishes within this wait on any machine; SERVING must not come of it.
  EXPECT_FALSE((*server)->WaitUntilServing(absl::Seconds(2)));
}

class TimbreServerMetricsTest : public TimbreServerTest {
 protected:
  TimbreServerMetricsTest() { with_metrics_ = true; }
};

TEST_F(TimbreServerMetricsTest, MetricsCountCallsByMethodAndCode) {
  ASSERT_THAT(client_->Blend(FixtureRequest()), IsOk());
  v1::BlendRequest unknown = FixtureRequest();
  unknown.set_speaker("nobody");
  ASSERT_FALSE(client_->Blend(unknown).ok());
  const std::string metrics = ScrapeMetrics(server_->metrics_port());
  EXPECT_THAT(metrics, HasSubstr("timbre_rpc_calls_total{code=\"OK\",method=\"Blend\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("timbre_rpc_calls_total{code=\"NOT_FOUND\",method=\"Blend\"} 1"));
  EXPECT_THAT(metrics, HasSubstr(absl::StrCat("timbre_frames_total{method=\"Blend\"} ", rows_)));
  EXPECT_THAT(metrics, HasSubstr("timbre_rpc_duration_seconds_bucket{code=\"OK\",method=\"Blend\",le=\"0.0001\"}"));
  EXPECT_THAT(metrics, HasSubstr("timbre_stage_duration_seconds_count{stage=\"search\"} 1"));
}

// A server with three small speakers (a, b, c) under a memory budget for two, one speaker
// larger than the whole budget and one whose file is not an index.
class TimbreServerBudgetTest : public ::testing::Test {
 protected:
  static constexpr int kDim = 16;

  void SetUp() override {
    for (uint32_t seed = 0; seed < 3; ++seed) {
      const std::string name(1, static_cast<char>('a' + seed));
      timbre::testing::WriteRvcIndex(GenerateClusteredFrames(400, kDim, 8, seed), 8,
                                     repo_.Join(name + "/added_" + name + ".index"));
    }
    timbre::testing::WriteRvcIndex(GenerateClusteredFrames(4000, kDim, 8, 9), 8,
                                   repo_.Join("big/added_big.index"));
    timbre::testing::WriteFile(repo_.Join("broken/added_broken.index"), "not an index");
    auto index = FaissIndex::Load(repo_.Join("a/added_a.index"));
    ASSERT_THAT(index, IsOk());
    budget_ = 2 * (*index)->memory_bytes() + (*index)->memory_bytes() / 2;

    TimbreServer::Options options = LoopbackOptions(repo_.path(), with_metrics_);
    options.memory_budget_bytes = budget_;
    options.per_speaker_metrics = with_metrics_;
    StartServerAndClient(options, &server_, &client_);
  }

  absl::StatusOr<v1::BlendResponse> BlendOf(const std::string& speaker) const {
    v1::BlendRequest request;
    request.set_speaker(speaker);
    *request.mutable_frames() =
        MakeFrames(v1::DTYPE_FLOAT32, 16, kDim,
                   Pack(GenerateClusteredFrames(16, kDim, 4, 3).values));
    return client_->Blend(request);
  }

  v1::SpeakerInfo::State StateOf(const std::string& speaker) const {
    auto info = client_->GetSpeaker(speaker);
    EXPECT_THAT(info, IsOk());
    return info.ok() ? info->state() : v1::SpeakerInfo::STATE_UNSPECIFIED;
  }

  // The memory_bytes of every speaker the server lists.
  int64_t ListedMemory() const {
    auto speakers = client_->ListSpeakers();
    EXPECT_THAT(speakers, IsOk());
    int64_t bytes = 0;
    for (const v1::SpeakerInfo& speaker : speakers->speakers()) bytes += speaker.memory_bytes();
    return bytes;
  }

  bool with_metrics_ = false;
  int64_t budget_ = 0;
  ScratchDir repo_;
  std::unique_ptr<TimbreServer> server_;
  std::unique_ptr<TimbreClient> client_;
};

TEST_F(TimbreServerBudgetTest, LoadAndUnloadSpeakers) {
  EXPECT_EQ(StateOf("a"), v1::SpeakerInfo::STATE_LOADED);
  EXPECT_EQ(StateOf("c"), v1::SpeakerInfo::STATE_UNLOADED);  // did not fit at start
  auto loaded = client_->LoadSpeaker("c", /*warmup=*/true);
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ(loaded->state(), v1::SpeakerInfo::STATE_LOADED);
  EXPECT_EQ(loaded->dim(), static_cast<uint32_t>(kDim));
  EXPECT_EQ(loaded->num_vectors(), 400u);
  EXPECT_GT(loaded->memory_bytes(), 0u);
  // a was the least recently used: it made room.
  EXPECT_EQ(StateOf("a"), v1::SpeakerInfo::STATE_UNLOADED);
  EXPECT_LE(ListedMemory(), budget_);

  auto unloaded = client_->UnloadSpeaker("c");
  ASSERT_THAT(unloaded, IsOk());
  EXPECT_EQ(unloaded->state(), v1::SpeakerInfo::STATE_UNLOADED);
  EXPECT_EQ(unloaded->memory_bytes(), 0u);
  EXPECT_THAT(client_->UnloadSpeaker("c"), IsOk());
  // The next call loads it again.
  ASSERT_THAT(BlendOf("c"), IsOk());
  EXPECT_EQ(StateOf("c"), v1::SpeakerInfo::STATE_LOADED);
}

TEST_F(TimbreServerBudgetTest, LoadAndUnloadErrorsNameTheProblem) {
  EXPECT_THAT(client_->LoadSpeaker("nobody", false),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("speaker 'nobody' not found")));
  EXPECT_THAT(client_->UnloadSpeaker("nobody"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("speaker 'nobody' not found")));
  EXPECT_THAT(client_->LoadSpeaker("../a", false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must not start with '.'")));
  EXPECT_THAT(client_->UnloadSpeaker(""), StatusIs(absl::StatusCode::kInvalidArgument, _));
  EXPECT_THAT(client_->LoadSpeaker("broken", false),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("speaker 'broken' failed to load"),
                             HasSubstr("not a readable faiss index"))));
  EXPECT_THAT(client_->LoadSpeaker("big", false),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("speaker 'big'"),
                             HasSubstr(absl::StrCat("memory budget of ", budget_, " bytes")))));
}

TEST_F(TimbreServerBudgetTest, SpeakerLargerThanTheBudgetIsResourceExhausted) {
  auto info = client_->GetSpeaker("big");
  ASSERT_THAT(info, IsOk());
  EXPECT_EQ(info->state(), v1::SpeakerInfo::STATE_FAILED);
  EXPECT_THAT(info->error(), HasSubstr("more than the whole memory budget"));
  EXPECT_THAT(BlendOf("big"),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("speaker 'big': the index needs"),
                             HasSubstr(absl::StrCat("memory budget of ", budget_, " bytes")))));
}

TEST_F(TimbreServerBudgetTest, ConcurrentCallersOfMoreSpeakersThanFitAllSucceed) {
  std::atomic<int> failures{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&, t] {
      for (int call = 0; call < 12; ++call) {
        const std::string speaker(1, static_cast<char>('a' + (t + call) % 3));
        if (!BlendOf(speaker).ok()) failures++;
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LE(ListedMemory(), budget_);
}

class TimbreServerBudgetMetricsTest : public TimbreServerBudgetTest {
 protected:
  TimbreServerBudgetMetricsTest() { with_metrics_ = true; }
};

TEST_F(TimbreServerBudgetMetricsTest, ExpositionIsPromtoolCleanAndComplete) {
  // A finished build: its speaker (256-dim frames) is larger than the whole budget.
  ScratchDir features;
  timbre::testing::WriteFile(features.Join("0.npy"), timbre::testing::Float32Npy(200, 256, 0));
  auto builder = BuilderClient::Create(timbre::testing::LocalClientOptions(server_->port()));
  ASSERT_THAT(builder, IsOk());
  auto set = (*builder)->Upload(features.path(), 64 << 10, [](int64_t, int64_t) {});
  ASSERT_THAT(set, IsOk());
  v1::BuildIndexRequest build;
  build.set_speaker("built");
  build.set_feature_set_id(set->id());
  build.mutable_recipe()->set_kind(v1::Recipe::KIND_RVC);
  auto job = (*builder)->Build(build);
  ASSERT_THAT(job, IsOk());
  auto finished = (*builder)->WatchJob(job->id(), [](const v1::BuildJob&) {});
  ASSERT_THAT(finished, IsOk());
  ASSERT_EQ(finished->state(), v1::BuildJob::STATE_SUCCEEDED) << finished->error();

  ASSERT_THAT(BlendOf("a"), IsOk());
  ASSERT_THAT(BlendOf("c"), IsOk());  // loads c, evicting b
  EXPECT_FALSE(BlendOf("nobody").ok());
  // Refused for its size, which is no overload.
  EXPECT_THAT(BlendOf("big"), StatusIs(absl::StatusCode::kResourceExhausted, _));
  v1::BlendRequest invalid;
  invalid.set_speaker("a");
  EXPECT_FALSE(client_->Blend(invalid).ok());
  auto session = client_->OpenSession("a", v1::RetrievalOptions());
  ASSERT_THAT(session->Send(MakeFrames(v1::DTYPE_FLOAT32, 16, kDim,
                                       Pack(GenerateClusteredFrames(16, kDim, 4, 3).values))),
              IsOk());

  const std::string metrics = ScrapeMetrics(server_->metrics_port());
  timbre::testing::ExpectPromtoolClean(metrics);
  for (const std::string& line : {
           std::string("timbre_rpc_duration_seconds_count{code=\"OK\",method=\"Blend\",speaker=\"a\"} 1"),
           std::string("timbre_rpc_duration_seconds_count{code=\"OK\",method=\"Blend\",speaker=\"c\"} 1"),
           std::string("timbre_rpc_duration_seconds_count{code=\"NOT_FOUND\",method=\"Blend\",speaker=\"\"} 1"),
           std::string("timbre_frames_total{method=\"Blend\",speaker=\"c\"} 16"),
           std::string("timbre_frames_total{method=\"BlendStream\",speaker=\"a\"} 16"),
           std::string("timbre_rpc_calls_total{code=\"OK\",method=\"Blend\"} 2"),
           std::string("timbre_rpcs_in_flight{method=\"Blend\"} 0"),
           std::string("timbre_rpcs_in_flight{method=\"BlendStream\"} 1"),
           std::string("timbre_rejected_calls_total{reason=\"invalid\"} 1"),
           std::string("timbre_rejected_calls_total{reason=\"too_large\"} 1"),
           std::string("timbre_rejected_calls_total{reason=\"overloaded\"} 0"),
           std::string("timbre_stage_duration_seconds_count{stage=\"queue\"} 3"),
           std::string("timbre_speakers{state=\"loaded\"} 2"),
           std::string("timbre_speakers{state=\"loading\"} 0"),
           std::string("timbre_speakers{state=\"failed\"} 3"),  // broken, big, built
           std::string("timbre_speakers{state=\"unloaded\"} 1"),
           std::string("timbre_index_evictions_total 1"),
           std::string("timbre_index_load_duration_seconds_count{result=\"ok\"} 3"),
           std::string("timbre_index_load_duration_seconds_count{result=\"error\"} 1"),
           absl::StrCat("timbre_index_memory_budget_bytes ", budget_),
           std::string("timbre_index_mapped_bytes 0"),
           std::string("timbre_build_jobs{state=\"succeeded\"} 1"),
           std::string("timbre_build_jobs{state=\"running\"} 0"),
           std::string("timbre_build_jobs{state=\"queued\"} 0"),
           std::string("timbre_build_jobs{state=\"failed\"} 0"),
           std::string("timbre_build_jobs{state=\"cancelled\"} 0"),
       }) {
    EXPECT_THAT(metrics, HasSubstr(line));
  }
  EXPECT_THAT(metrics, HasSubstr("timbre_index_memory_bytes "));
  EXPECT_THAT(session->Close(), IsOk());
}

TEST(TimbreServerStartTest, BadOptionsAreRejected) {
  TimbreServer::Options options;
  EXPECT_THAT(TimbreServer::Start(options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--repo is required")));
  options.repo = "/nonexistent/timbre-repo";
  options.port = 0;
  options.metrics_port = -1;
  EXPECT_THAT(TimbreServer::Start(options).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("is not a directory")));
  ScratchDir repo;
  options.repo = repo.path();
  options.port = 70000;
  EXPECT_THAT(TimbreServer::Start(options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("port 70000")));
  options.port = 0;
  options.search_idle_spin = absl::Milliseconds(-5);
  EXPECT_THAT(TimbreServer::Start(options).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--search_idle_spin is -5ms")));
}

TEST(TimbreServerStartTest, EmptyRepositoryGetsDemoSpeaker) {
  ScratchDir repo;
  TimbreServer::Options options;
  options.repo = repo.path();
  options.host = "127.0.0.1";
  options.port = 0;
  options.metrics_port = -1;
  options.demo_if_empty = true;
  auto server = TimbreServer::Start(options);
  ASSERT_THAT(server, IsOk());
  EXPECT_EQ((*server)->metrics_port(), -1);
  EXPECT_TRUE(std::filesystem::exists(repo.Join("demo/1/index.faiss")));
  EXPECT_TRUE(std::filesystem::exists(repo.Join("demo/1/metadata.json")));
}

// The ids of this process's threads.
std::set<pid_t> ThreadIds() {
  std::set<pid_t> ids;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
    ids.insert(static_cast<pid_t>(std::stoi(entry.path().filename().string())));
  }
  return ids;
}

// The scheduling policy of thread `id` (field 41 of its stat), -1 if it is gone.
int PolicyOf(pid_t id) {
  std::ifstream file(absl::StrCat("/proc/self/task/", id, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const size_t name_end = stat.rfind(')');
  if (name_end == std::string::npos) return -1;
  std::istringstream fields(stat.substr(name_end + 2));  // from field 3, the state
  std::string field;
  for (int i = 3; i <= 41 && fields >> field; ++i) {
    if (i == 41) return std::stoi(field);
  }
  return -1;
}

// Switches every thread of this process to `policy`, so that threads they start inherit it.
void SetEveryThreadPolicy(int policy) {
  const sched_param param{};
  for (pid_t id : ThreadIds()) sched_setscheduler(id, policy, &param);
}

// Options::batch_scheduling: Start switches the calling thread and the threads already running
// to SCHED_BATCH, and the threads it starts (the search workers among them) inherit it; turned
// off, nothing changes policy.
TEST(TimbreServerStartTest, ServerThreadsRunUnderBatchSchedulingUnlessTurnedOff) {
  for (bool batch : {false, true}) {
    // Servers of earlier tests in this process switched its threads; threads those start
    // would inherit SCHED_BATCH.
    SetEveryThreadPolicy(SCHED_OTHER);
    ASSERT_EQ(sched_getscheduler(0), SCHED_OTHER);
    std::atomic<pid_t> running_id{0};
    absl::Notification stop_running;
    std::thread running([&] {
      running_id = gettid();
      stop_running.WaitForNotification();
    });
    absl::Cleanup join_running = [&] {
      stop_running.Notify();
      running.join();
    };
    while (running_id == 0) std::this_thread::yield();
    const std::set<pid_t> before = ThreadIds();
    ScratchDir repo;
    TimbreServer::Options options = LoopbackOptions(repo.path(), /*metrics=*/false);
    options.demo_if_empty = true;
    options.batch_scheduling = batch;
    auto server = TimbreServer::Start(options);
    ASSERT_THAT(server, IsOk());
    EXPECT_EQ(sched_getscheduler(0), batch ? SCHED_BATCH : SCHED_OTHER) << "batch " << batch;
    int started = 0, started_batch = 0;
    for (pid_t id : ThreadIds()) {
      if (before.count(id) > 0) continue;
      ++started;
      if (PolicyOf(id) == SCHED_BATCH) ++started_batch;
    }
    EXPECT_GT(started, 0);
    if (batch) {
      EXPECT_GT(started_batch, 0);
    } else {
      EXPECT_EQ(started_batch, 0);
    }
    EXPECT_EQ(PolicyOf(running_id), batch ? SCHED_BATCH : SCHED_OTHER) << "batch " << batch;
  }
  SetEveryThreadPolicy(SCHED_OTHER);
  EXPECT_EQ(sched_getscheduler(0), SCHED_OTHER);
}

// --lazy_load: SERVING once scanned with nothing loaded; a call loads its speaker, whose
// version then shows in timbre_speaker_version.
TEST(TimbreServerLazyLoadTest, ServesOnceScannedAndLoadsASpeakerOnItsFirstCall) {
  ScratchDir repo;
  TimbreServer::Options options = FixtureServerOptions(repo);
  options.lazy_load = true;
  options.metrics_host = "127.0.0.1";
  options.metrics_port = 0;
  auto server = testing::StartServer(options);
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(CheckHealth(server->port(), "timbre.v1.Timbre"),
              IsOkAndHolds(grpc::health::v1::HealthCheckResponse::SERVING));
  auto client = testing::MakeClient(testing::LocalClientOptions(server->port()));
  auto before = client->GetSpeaker("rvc");
  ASSERT_THAT(before, IsOk());
  EXPECT_EQ(before->state(), v1::SpeakerInfo::STATE_UNLOADED);
  EXPECT_THAT(ScrapeMetrics(server->metrics_port()),
              ::testing::Not(HasSubstr("timbre_speaker_version{")));
  ASSERT_THAT(client->Blend(testing::FixtureBlendRequest(testing::ReadFixtureQueries(), 4)),
              IsOk());
  auto after = client->GetSpeaker("rvc");
  ASSERT_THAT(after, IsOk());
  EXPECT_EQ(after->state(), v1::SpeakerInfo::STATE_LOADED);
  EXPECT_EQ(after->version(), kFixtureIndex);
  // An RVC file has no version number: 0.
  EXPECT_THAT(ScrapeMetrics(server->metrics_port()),
              HasSubstr("timbre_speaker_version{speaker=\"rvc\"} 0"));
}

}  // namespace
}  // namespace timbre
