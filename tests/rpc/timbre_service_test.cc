// TimbreService through gRPC under overload and with deadlines: a real server on a loopback port
// with one search worker. The excess of a burst is refused at once with RESOURCE_EXHAUSTED while
// the admitted calls succeed; a call whose deadline passes while it waits is not searched.
#include "server/rpc/timbre_service.h"

#include <memory>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "tests/support/server_test_support.h"

namespace timbre {
namespace {

using ::testing::HasSubstr;
using ::timbre::testing::FixtureBlendRequest;
using ::timbre::testing::IsOk;
using ::timbre::testing::MetricValue;
using ::timbre::testing::ScrapeMetrics;

constexpr int kFixtureLists = 25;

// Blend calls started together on the callback API; Wait() returns once all are answered.
class Burst {
 public:
  Burst(const TimbreClient& client, const std::vector<v1::BlendRequest>& requests,
        const std::vector<absl::Duration>& timeouts)
      : calls_(requests.size()), remaining_(static_cast<int>(requests.size())) {
    for (size_t i = 0; i < requests.size(); ++i) {
      Call& call = calls_[i];
      call.request = requests[i];
      call.context.set_deadline(std::chrono::system_clock::now() +
                                absl::ToChronoMilliseconds(timeouts[i]));
      client.stub().async()->Blend(&call.context, &call.request, &call.response,
                                   [this, &call](grpc::Status status) {
                                     call.status = FromGrpcStatus(status);
                                     remaining_.DecrementCount();
                                   });
    }
  }
  void Wait() { remaining_.Wait(); }
  int Count(absl::StatusCode code) const {
    int count = 0;
    for (const Call& call : calls_) count += call.status.code() == code;
    return count;
  }
  std::vector<absl::Status> Statuses() const {
    std::vector<absl::Status> statuses;
    for (const Call& call : calls_) statuses.push_back(call.status);
    return statuses;
  }

 private:
  struct Call {
    grpc::ClientContext context;
    v1::BlendRequest request;
    v1::BlendResponse response;
    absl::Status status;
  };
  std::vector<Call> calls_;
  absl::BlockingCounter remaining_;
};

// A call that keeps the only search worker busy for a while: every list of the index probed for
// many frames.
v1::BlendRequest SlowRequest(const timbre::testing::FixtureQueries& queries) {
  v1::BlendRequest request = FixtureBlendRequest(queries, 2000);
  request.mutable_options()->set_nprobe(kFixtureLists);
  return request;
}

class TimbreServiceTest : public ::testing::Test {
 protected:
  // hold_first_search: the worker waits before its first search until release_search_.
  void StartServer(int max_queued_calls, bool with_metrics, bool hold_first_search = false) {
    TimbreServer::Options options = timbre::testing::FixtureServerOptions(repo_);
    if (hold_first_search) {
      options.before_search = [this] {
        if (first_search_.HasBeenNotified()) return;  // one worker: no race
        first_search_.Notify();
        release_search_.WaitForNotification();
      };
    }
    options.search_threads = 1;
    options.max_queued_calls = max_queued_calls;
    if (with_metrics) {
      options.metrics_host = "127.0.0.1";
      options.metrics_port = 0;
    }
    server_ = timbre::testing::StartServer(options);
    ASSERT_NE(server_, nullptr);
    client_ = timbre::testing::MakeClient(timbre::testing::LocalClientOptions(server_->port()));
    ASSERT_NE(client_, nullptr);
  }

  void TearDown() override {
    if (!release_search_.HasBeenNotified()) release_search_.Notify();
  }

  timbre::testing::ScratchDir repo_;
  absl::Notification first_search_;
  absl::Notification release_search_;
  const timbre::testing::FixtureQueries queries_ = timbre::testing::ReadFixtureQueries();
  std::unique_ptr<TimbreServer> server_;
  std::unique_ptr<TimbreClient> client_;
};

TEST_F(TimbreServiceTest, BurstBeyondTheQueueIsRefusedAndAdmittedCallsSucceed) {
  constexpr int kQueue = 2;
  constexpr int kCalls = 24;
  StartServer(kQueue, /*with_metrics=*/true);
  // Slow calls, each searched alone: one searching and two waiting at a time, the rest refused.
  Burst burst(*client_, std::vector<v1::BlendRequest>(kCalls, SlowRequest(queries_)),
              std::vector<absl::Duration>(kCalls, absl::Minutes(1)));
  burst.Wait();
  const int ok = burst.Count(absl::StatusCode::kOk);
  const int refused = burst.Count(absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ok + refused, kCalls);
  EXPECT_GE(ok, 1);
  EXPECT_GE(refused, 1);
  for (const absl::Status& status : burst.Statuses()) {
    if (status.ok()) continue;
    EXPECT_THAT(status.message(), HasSubstr("the search queue is full (limit: 2 waiting calls)"));
  }
  // Each refused call is counted once as rejected (the server records before it answers).
  EXPECT_EQ(MetricValue(ScrapeMetrics(server_->metrics_port()),
                        "timbre_rejected_calls_total{reason=\"overloaded\"}"),
            refused);
  // The server serves normally once the burst is over.
  EXPECT_THAT(client_->Blend(FixtureBlendRequest(queries_, 16)), IsOk());
}

TEST_F(TimbreServiceTest, CallWhoseDeadlinePassesInTheQueueIsNotSearched) {
  StartServer(/*max_queued_calls=*/64, /*with_metrics=*/true, /*hold_first_search=*/true);
  // One call holds the only search worker; calls sent meanwhile wait in the queue until their
  // deadline passes and their clients stop waiting.
  Burst first(*client_, {FixtureBlendRequest(queries_, 16)}, {absl::Minutes(1)});
  ASSERT_TRUE(first_search_.WaitForNotificationWithTimeout(absl::Seconds(20)));
  constexpr int kWaiting = 8;
  constexpr absl::Duration kTimeout = absl::Seconds(1);
  const v1::BlendRequest request = FixtureBlendRequest(queries_, 16);
  const absl::Time sent = absl::Now();
  Burst waiting(*client_, std::vector<v1::BlendRequest>(kWaiting, request),
                std::vector<absl::Duration>(kWaiting, kTimeout));
  waiting.Wait();
  EXPECT_EQ(waiting.Count(absl::StatusCode::kDeadlineExceeded), kWaiting);
  // The server's deadline is the client's plus the time the call took to arrive (loopback:
  // well under a second); release the worker once that has passed too.
  absl::SleepFor(sent + 2 * kTimeout - absl::Now());
  release_search_.Notify();
  first.Wait();
  EXPECT_EQ(first.Count(absl::StatusCode::kOk), 1);
  // The worker finds the waiting calls past their deadline and answers them without a search.
  const int metrics_port = server_->metrics_port();
  double searched = 0, expired = 0;
  EXPECT_TRUE(timbre::testing::WaitFor([&] {
    const std::string metrics = ScrapeMetrics(metrics_port);
    searched = MetricValue(metrics, "timbre_stage_duration_seconds_count{stage=\"search\"}");
    expired =
        MetricValue(metrics, "timbre_rpc_calls_total{code=\"DEADLINE_EXCEEDED\",method=\"Blend\"}");
    return searched + expired == 1 + kWaiting;
  })) << searched << " searched + " << expired << " expired";
  EXPECT_EQ(searched, 1);
  EXPECT_EQ(expired, kWaiting);
  EXPECT_EQ(MetricValue(ScrapeMetrics(metrics_port),
                        "timbre_rejected_calls_total{reason=\"deadline\"}"),
            kWaiting);
}

}  // namespace
}  // namespace timbre
