// TimbreClient's cluster contract: the x-timbre-speaker header on the calls about one speaker
// only, gRPC's retry policy on UNAVAILABLE (and none with retries = 0), and a BlendSession that
// reopens its stream after UNAVAILABLE without losing or repeating a block, against a fake
// service and across the drain of a real server.
#include "timbre/timbre_client.h"

#include <sys/stat.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "server/timbre_server.h"
#include "tests/support/server_test_support.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::IsOkAndHolds;
using ::timbre::testing::StatusIs;

// A Timbre service that records the x-timbre-speaker header of every call by method, refuses the
// first `refuse_blends` Blend calls with UNAVAILABLE, and ends each BlendStream with
// `stream_end` after answering `blocks_per_stream` blocks (each answer echoes its block's
// frames).
class RecordingService final : public v1::Timbre::Service {
 public:
  std::atomic<int> refuse_blends{0};
  std::atomic<int> blend_attempts{0};
  std::atomic<int> streams_opened{0};
  int blocks_per_stream = 1 << 30;
  grpc::Status stream_end = grpc::Status::OK;

  // The header values each method saw ("" when a call had none), in call order.
  std::map<std::string, std::vector<std::string>> headers() const {
    absl::MutexLock lock(&mutex_);
    return headers_;
  }

  grpc::Status Blend(grpc::ServerContext* context, const v1::BlendRequest* request,
                     v1::BlendResponse* response) override {
    Record("Blend", *context);
    blend_attempts.fetch_add(1);
    if (refuse_blends.fetch_sub(1) > 0) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "replica going away");
    }
    *response->mutable_frames() = request->frames();
    return grpc::Status::OK;
  }
  grpc::Status BlendStream(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::BlendStreamResponse, v1::BlendStreamRequest>* stream) override {
    Record("BlendStream", *context);
    streams_opened.fetch_add(1);
    v1::BlendStreamRequest request;
    for (int answered = 0; answered < blocks_per_stream && stream->Read(&request); ++answered) {
      if (answered == 0 && request.speaker().empty()) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "first block names no speaker");
      }
      v1::BlendStreamResponse response;
      *response.mutable_frames() = request.frames();
      stream->Write(response);
    }
    return stream_end;
  }
  grpc::Status Search(grpc::ServerContext* context, const v1::SearchRequest*,
                      v1::SearchResponse*) override {
    return Record("Search", *context);
  }
  grpc::Status GetSpeaker(grpc::ServerContext* context, const v1::GetSpeakerRequest*,
                          v1::SpeakerInfo*) override {
    return Record("GetSpeaker", *context);
  }
  grpc::Status LoadSpeaker(grpc::ServerContext* context, const v1::LoadSpeakerRequest*,
                           v1::SpeakerInfo*) override {
    return Record("LoadSpeaker", *context);
  }
  grpc::Status UnloadSpeaker(grpc::ServerContext* context, const v1::UnloadSpeakerRequest*,
                             v1::SpeakerInfo*) override {
    return Record("UnloadSpeaker", *context);
  }
  grpc::Status ListSpeakers(grpc::ServerContext* context, const v1::ListSpeakersRequest*,
                            v1::ListSpeakersResponse*) override {
    return Record("ListSpeakers", *context);
  }

 private:
  grpc::Status Record(const std::string& method, const grpc::ServerContext& context) {
    std::string value;
    auto found = context.client_metadata().find(kSpeakerHeader);
    if (found != context.client_metadata().end()) {
      value.assign(found->second.data(), found->second.size());
    }
    absl::MutexLock lock(&mutex_);
    headers_[method].push_back(value);
    return grpc::Status::OK;
  }

  mutable absl::Mutex mutex_;
  std::map<std::string, std::vector<std::string>> headers_ ABSL_GUARDED_BY(mutex_);
};

class TimbreClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }
  void TearDown() override { server_->Shutdown(); }

  std::unique_ptr<TimbreClient> Client(int retries) {
    TimbreClient::Options options = testing::LocalClientOptions(port_);
    options.retries = retries;
    options.timeout = absl::Seconds(10);
    return testing::MakeClient(options);
  }

  static v1::Frames Block(float value) {
    const std::vector<float> values(4, value);
    return MakeFrames(v1::DTYPE_FLOAT32, 1, 4, testing::Pack(values));
  }

  RecordingService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(TimbreClientTest, SpeakerHeaderOnEveryCallAboutOneSpeakerAndNoOther) {
  auto client = Client(4);
  v1::BlendRequest blend;
  blend.set_speaker("alice");
  *blend.mutable_frames() = Block(1);
  EXPECT_THAT(client->Blend(blend), IsOk());
  v1::SearchRequest search;
  search.set_speaker("bob");
  EXPECT_THAT(client->Search(search), IsOk());
  EXPECT_THAT(client->GetSpeaker("carol"), IsOk());
  EXPECT_THAT(client->LoadSpeaker("dave", false), IsOk());
  EXPECT_THAT(client->UnloadSpeaker("erin"), IsOk());
  EXPECT_THAT(client->ListSpeakers(), IsOk());
  auto session = client->OpenSession("frank", v1::RetrievalOptions());
  EXPECT_THAT(session->Send(Block(2)), IsOk());
  EXPECT_THAT(session->Close(), IsOk());

  const auto headers = service_.headers();
  EXPECT_THAT(headers.at("Blend"), ElementsAre("alice"));
  EXPECT_THAT(headers.at("Search"), ElementsAre("bob"));
  EXPECT_THAT(headers.at("GetSpeaker"), ElementsAre("carol"));
  EXPECT_THAT(headers.at("LoadSpeaker"), ElementsAre("dave"));
  EXPECT_THAT(headers.at("UnloadSpeaker"), ElementsAre("erin"));
  EXPECT_THAT(headers.at("BlendStream"), ElementsAre("frank"));
  EXPECT_THAT(headers.at("ListSpeakers"), ElementsAre(""));
}

TEST_F(TimbreClientTest, UnavailableBlendIsRetriedUntilItIsAnswered) {
  service_.refuse_blends = 2;
  auto client = Client(4);
  v1::BlendRequest request;
  request.set_speaker("alice");
  *request.mutable_frames() = Block(3);
  auto response = client->Blend(request);
  ASSERT_THAT(response, IsOk());
  EXPECT_EQ(response->frames().data(), request.frames().data());
  EXPECT_EQ(service_.blend_attempts.load(), 3);
  // Every attempt carried the header.
  EXPECT_THAT(service_.headers().at("Blend"), ElementsAre("alice", "alice", "alice"));
}

TEST_F(TimbreClientTest, RetriesAreBoundedByTheOption) {
  service_.refuse_blends = 100;
  auto client = Client(2);
  v1::BlendRequest request;
  request.set_speaker("alice");
  *request.mutable_frames() = Block(3);
  EXPECT_THAT(client->Blend(request),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("replica going away")));
  EXPECT_EQ(service_.blend_attempts.load(), 3);
}

TEST_F(TimbreClientTest, ZeroRetriesFailAtOnce) {
  service_.refuse_blends = 1;
  auto client = Client(0);
  v1::BlendRequest request;
  request.set_speaker("alice");
  *request.mutable_frames() = Block(3);
  EXPECT_THAT(client->Blend(request), StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  EXPECT_EQ(service_.blend_attempts.load(), 1);
}

TEST_F(TimbreClientTest, NegativeRetriesAreRefused) {
  TimbreClient::Options options = testing::LocalClientOptions(port_);
  options.retries = -1;
  EXPECT_THAT(TimbreClient::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--retries is -1")));
}

TEST(ReadTokenFileTest, GivesTheFirstTokenLine) {
  ::timbre::testing::ScratchDir dir;
  ::timbre::testing::WriteFile(dir.Join("tokens"), "# admin\n\n  secret-1  \nsecret-2\n");
  EXPECT_THAT(ReadTokenFile(dir.Join("tokens")), IsOkAndHolds("secret-1"));
  ::timbre::testing::WriteFile(dir.Join("empty"), "# nothing\n\n");
  EXPECT_THAT(ReadTokenFile(dir.Join("empty")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("holds no token")));
}

TEST(ReadTokenFileTest, AnUnreadableFileIsNamedWithItsFlag) {
  ::timbre::testing::ScratchDir dir;
  EXPECT_THAT(ReadTokenFile(dir.Join("missing")),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("cannot read --token_file '"), HasSubstr("missing'"),
                             HasSubstr("No such file"))));
  // A FIFO is refused at once instead of waiting for a writer.
  ASSERT_EQ(mkfifo(dir.Join("fifo").c_str(), 0600), 0);
  EXPECT_THAT(ReadTokenFile(dir.Join("fifo")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("not a regular file")));
  ::timbre::testing::WriteFile(dir.Join("huge"), std::string((1 << 20) + 1, 'x'));
  EXPECT_THAT(ReadTokenFile(dir.Join("huge")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("more than the 1048576")));
}

TEST(TimbreClientCreateTest, AnUnreadableTlsFileIsNamedWithItsFlag) {
  ::timbre::testing::ScratchDir dir;
  TimbreClient::Options options;
  options.target = "127.0.0.1:1";
  options.tls_ca_file = dir.Join("ca.pem");
  EXPECT_THAT(TimbreClient::Create(options),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("cannot read --tls_ca '"), HasSubstr("ca.pem'"))));
  options.tls_ca_file.clear();
  options.tls_cert_file = dir.Join("cert.pem");
  options.tls_key_file = dir.Join("key.pem");
  EXPECT_THAT(TimbreClient::Create(options),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("cannot read --tls_cert '")));
}

TEST(RetryServiceConfigTest, NamesTheRetriedMethodsAndAttempts) {
  const std::string config = RetryServiceConfig(4);
  EXPECT_THAT(config, HasSubstr(R"({"service":"timbre.v1.Timbre"})"));
  for (const char* method : {"GetJob", "ListJobs", "GetFeatureSet", "ListFeatureSets", "WatchJob"}) {
    EXPECT_THAT(config, HasSubstr(absl::StrCat(
                            R"({"service":"timbre.v1.IndexBuilder","method":")", method, "\"}")));
  }
  EXPECT_THAT(config, ::testing::Not(HasSubstr("BuildIndex")));
  EXPECT_THAT(config, HasSubstr(R"("maxAttempts":5,"initialBackoff":"0.05s","maxBackoff":"1s")"));
  EXPECT_THAT(config, HasSubstr(R"("retryableStatusCodes":["UNAVAILABLE"])"));
  EXPECT_EQ(RetryServiceConfig(0), "");
}

TEST_F(TimbreClientTest, SessionReopensAfterUnavailableAndLosesNoBlock) {
  service_.blocks_per_stream = 2;
  service_.stream_end = grpc::Status(grpc::StatusCode::UNAVAILABLE, "open a new stream");
  auto client = Client(4);
  auto session = client->OpenSession("alice", v1::RetrievalOptions());
  for (int block = 0; block < 7; ++block) {
    const v1::Frames frames = Block(static_cast<float>(block));
    auto response = session->Send(frames);
    ASSERT_THAT(response, IsOk()) << "block " << block;
    EXPECT_EQ(response->frames().data(), frames.data()) << "block " << block;
  }
  // Blocks 2, 4 and 6 each found their stream ended and went on a new one, which names the
  // speaker again.
  EXPECT_EQ(session->reopens(), 3);
  EXPECT_EQ(session->blocks_after_reopen(), 3);
  EXPECT_EQ(service_.streams_opened.load(), 4);
  EXPECT_THAT(service_.headers().at("BlendStream"), ::testing::Each("alice"));
}

TEST_F(TimbreClientTest, SessionReopensAStreamResetByTheOtherSide) {
  // What a client sees when a proxy's replica dies mid-stream or a replica's shutdown grace runs
  // out with the stream open; a cancel of the client's own would read "Cancelled".
  const std::vector<grpc::Status> resets = {
      grpc::Status(grpc::StatusCode::UNKNOWN, "No status received"),
      grpc::Status(grpc::StatusCode::INTERNAL, "Received RST_STREAM with error code 2"),
      grpc::Status(grpc::StatusCode::CANCELLED, "Received RST_STREAM with error code 8")};
  for (const grpc::Status& reset : resets) {
    service_.blocks_per_stream = 1;
    service_.stream_end = reset;
    service_.streams_opened = 0;
    auto client = Client(4);
    auto session = client->OpenSession("alice", v1::RetrievalOptions());
    for (int block = 0; block < 3; ++block) {
      EXPECT_THAT(session->Send(Block(static_cast<float>(block))), IsOk())
          << reset.error_message() << ", block " << block;
    }
    EXPECT_EQ(session->reopens(), 2) << reset.error_message();
  }
  service_.stream_end = grpc::Status(grpc::StatusCode::CANCELLED, "Cancelled");
  auto client = Client(4);
  auto session = client->OpenSession("alice", v1::RetrievalOptions());
  EXPECT_THAT(session->Send(Block(1)), IsOk());
  EXPECT_THAT(session->Send(Block(2)), StatusIs(absl::StatusCode::kCancelled, ::testing::_));
  EXPECT_EQ(session->reopens(), 0);
}

TEST_F(TimbreClientTest, SessionGivesUpAfterRetriesReopeningsWithoutAnAnswer) {
  service_.blocks_per_stream = 0;
  service_.stream_end = grpc::Status(grpc::StatusCode::UNAVAILABLE, "replica gone");
  auto client = Client(2);
  auto session = client->OpenSession("alice", v1::RetrievalOptions());
  EXPECT_THAT(session->Send(Block(1)),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("replica gone")));
  EXPECT_EQ(session->reopens(), 2);
  // Each of the 3 streams is itself retried by gRPC's policy (3 attempts with retries = 2), as
  // no response had been received: the server sees 3 x 3 stream attempts.
  EXPECT_EQ(service_.streams_opened.load(), 9);
  EXPECT_THAT(session->Send(Block(1)), StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
}

TEST_F(TimbreClientTest, SessionEndsOnAnyOtherStatus) {
  service_.blocks_per_stream = 1;
  service_.stream_end = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad block");
  auto client = Client(4);
  auto session = client->OpenSession("alice", v1::RetrievalOptions());
  EXPECT_THAT(session->Send(Block(1)), IsOk());
  EXPECT_THAT(session->Send(Block(2)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad block")));
  EXPECT_EQ(session->reopens(), 0);
  EXPECT_EQ(service_.streams_opened.load(), 1);
}

TEST_F(TimbreClientTest, SessionWithZeroRetriesDoesNotReopen) {
  service_.blocks_per_stream = 1;
  service_.stream_end = grpc::Status(grpc::StatusCode::UNAVAILABLE, "open a new stream");
  auto client = Client(0);
  auto session = client->OpenSession("alice", v1::RetrievalOptions());
  EXPECT_THAT(session->Send(Block(1)), IsOk());
  EXPECT_THAT(session->Send(Block(2)), StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  EXPECT_EQ(service_.streams_opened.load(), 1);
}

// A session through a channel to two real servers (pick_first): the first drains while blocks
// flow, the session reopens on the second, and every block is answered once, with its own blend.
TEST(TimbreClientDrainTest, StreamAcrossARealDrainLosesAndRepeatsNoBlock) {
  testing::ScratchDir repo;
  const TimbreServer::Options options = testing::FixtureServerOptions(repo);
  auto first = testing::StartServer(options);
  auto second = testing::StartServer(options);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  TimbreClient::Options client_options = testing::LocalClientOptions(first->port());
  client_options.target =
      absl::StrCat("ipv4:127.0.0.1:", first->port(), ",127.0.0.1:", second->port());
  auto client = testing::MakeClient(client_options);
  auto reference = testing::MakeClient(testing::LocalClientOptions(second->port()));
  const testing::FixtureQueries queries = testing::ReadFixtureQueries();

  auto session = client->OpenSession("rvc", v1::RetrievalOptions());
  std::thread drain;
  int answered_after_reopen = 0;
  for (int block = 0; block < 20000 && answered_after_reopen < 20; ++block) {
    if (block == 10) {
      drain = std::thread([&] { first->Drain(absl::Milliseconds(100), absl::Seconds(2)); });
    }
    const v1::BlendRequest request = testing::FixtureBlendRequest(queries, 4 + block % 5);
    auto answer = session->Send(request.frames());
    ASSERT_THAT(answer, IsOk()) << "block " << block;
    auto expected = reference->Blend(request);
    ASSERT_THAT(expected, IsOk());
    EXPECT_EQ(answer->frames().data(), expected->frames().data()) << "block " << block;
    if (session->reopens() > 0) ++answered_after_reopen;
  }
  drain.join();
  EXPECT_THAT(session->Close(), IsOk());
  EXPECT_GE(session->reopens(), 1);
}

}  // namespace
}  // namespace timbre
