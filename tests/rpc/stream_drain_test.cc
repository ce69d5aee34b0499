// StreamDrain on its own with fake sessions, and the drain it drives through a real server:
// health turns NOT_SERVING, the block in flight is answered, open streams end cleanly, new calls
// are refused and Drain returns.
#include "server/rpc/stream_drain.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "tests/support/server_test_support.h"

namespace timbre {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::timbre::testing::CheckHealth;
using ::timbre::testing::IsOk;
using ::timbre::testing::IsOkAndHolds;
using ::timbre::testing::StatusIs;
using Health = grpc::health::v1::HealthCheckResponse;

class FakeStream : public DrainableStream {
 public:
  void EndAfterCurrentBlock() override { ends.fetch_add(1); }
  std::atomic<int> ends{0};
};

TEST(StreamDrainTest, DrainAllEndsEveryOpenStreamOnce) {
  StreamDrain drain;
  FakeStream a, b, gone;
  ASSERT_TRUE(drain.Add(&a));
  ASSERT_TRUE(drain.Add(&b));
  ASSERT_TRUE(drain.Add(&gone));
  drain.Remove(&gone);
  EXPECT_EQ(drain.open_streams(), 2u);
  EXPECT_FALSE(drain.draining());
  drain.DrainAll();
  EXPECT_TRUE(drain.draining());
  drain.DrainAll();  // a second drain does nothing more
  EXPECT_EQ(a.ends.load(), 1);
  EXPECT_EQ(b.ends.load(), 1);
  EXPECT_EQ(gone.ends.load(), 0);
  drain.Remove(&a);
  drain.Remove(&a);  // removing twice is harmless
  EXPECT_EQ(drain.open_streams(), 1u);
}

TEST(StreamDrainTest, StreamOpenedAfterTheDrainIsRefused) {
  StreamDrain drain;
  drain.DrainAll();
  FakeStream late;
  EXPECT_FALSE(drain.Add(&late));
  EXPECT_EQ(drain.open_streams(), 0u);
  EXPECT_EQ(late.ends.load(), 0);  // the stream ends itself
}

TEST(StreamDrainTest, ConcurrentSessionsAreEndedAtMostOnce) {
  StreamDrain drain;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 200;
  constexpr int kStreams = kThreads * kPerThread;
  std::vector<std::unique_ptr<FakeStream>> streams;
  for (int i = 0; i < kStreams; ++i) streams.push_back(std::make_unique<FakeStream>());
  std::vector<char> added(kStreams, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t * kPerThread; i < (t + 1) * kPerThread; ++i) {
        added[i] = drain.Add(streams[i].get());
        if (i % 2 == 0) drain.Remove(streams[i].get());  // even sessions end by themselves
      }
    });
  }
  drain.DrainAll();
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < kStreams; ++i) {
    const int ends = streams[i]->ends.load();
    if (!added[i]) {
      EXPECT_EQ(ends, 0) << "stream " << i << " was refused";  // opened after the drain
    } else if (i % 2 == 1) {
      EXPECT_EQ(ends, 1) << "stream " << i << " was open at the drain";
    } else {
      EXPECT_LE(ends, 1) << "stream " << i;
    }
  }
}

// A raw BlendStream, to have a block in flight while the server drains.
class RawStream {
 public:
  explicit RawStream(const TimbreClient& client) : stream_(client.stub().BlendStream(&context_)) {}

  bool Write(const v1::BlendRequest& block, bool first) {
    v1::BlendStreamRequest request;
    if (first) request.set_speaker("rvc");
    *request.mutable_frames() = block.frames();
    return stream_->Write(request);
  }
  bool Read(v1::BlendStreamResponse* response) { return stream_->Read(response); }
  // The stream's final status once the server has ended it.
  absl::Status Finish() {
    v1::BlendStreamResponse extra;
    while (stream_->Read(&extra)) {
    }
    return FromGrpcStatus(stream_->Finish());
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::BlendStreamRequest, v1::BlendStreamResponse>>
      stream_;
};

TEST(ServerDrainTest, DrainAnswersBlocksInFlightEndsStreamsAndRefusesNewCalls) {
  timbre::testing::ScratchDir repo;
  std::unique_ptr<TimbreServer> server =
      timbre::testing::StartServer(timbre::testing::FixtureServerOptions(repo));
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  auto client = timbre::testing::MakeClient(timbre::testing::LocalClientOptions(port));
  ASSERT_NE(client, nullptr);
  const timbre::testing::FixtureQueries queries = timbre::testing::ReadFixtureQueries();
  const v1::BlendRequest block = timbre::testing::FixtureBlendRequest(queries, 16);

  // Two sessions with one block answered each; `busy` then sends a second block that is in the
  // server when the drain starts, `idle` waits for its next block.
  RawStream busy(*client), idle(*client);
  v1::BlendStreamResponse response;
  for (RawStream* stream : {&busy, &idle}) {
    ASSERT_TRUE(stream->Write(block, /*first=*/true));
    ASSERT_TRUE(stream->Read(&response));
  }
  ASSERT_TRUE(busy.Write(block, /*first=*/false));

  absl::Notification drained;
  std::thread drainer([&] {
    server->Drain(/*grace=*/absl::Seconds(2), /*shutdown_grace=*/absl::Seconds(20));
    drained.Notify();
  });
  // During the grace period health says NOT_SERVING, for every service, but calls still work.
  EXPECT_TRUE(timbre::testing::WaitFor(
      [&] { return CheckHealth(port, "").value_or(Health::SERVING) == Health::NOT_SERVING; }));
  EXPECT_THAT(CheckHealth(port, "timbre.v1.Timbre"), IsOkAndHolds(Health::NOT_SERVING));
  EXPECT_THAT(client->ListSpeakers(), IsOk());

  // The block in flight is answered, then both streams end naming the shutdown.
  ASSERT_TRUE(busy.Read(&response));
  EXPECT_EQ(response.block_index(), 1u);
  EXPECT_EQ(response.frames().num_frames(), 16u);
  EXPECT_THAT(busy.Finish(),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("shutting down"), HasSubstr("after 2 answered blocks"))));
  EXPECT_THAT(idle.Finish(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("after 1 answered blocks")));
  ASSERT_TRUE(drained.WaitForNotificationWithTimeout(absl::Seconds(30)));
  drainer.join();
  EXPECT_THAT(client->ListSpeakers(), StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
}

}  // namespace
}  // namespace timbre
