#include "server/rpc/upload_stall_watchdog.h"

#include <atomic>

#include "absl/time/clock.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

class FakeUpload : public StallableUpload {
 public:
  absl::Time last_message() const override {
    return absl::FromUnixNanos(last_message_ns_.load());
  }
  void EndStalled(absl::Duration timeout) override {
    ++ended_;
    timeout_ns_ = absl::ToInt64Nanoseconds(timeout);
  }
  void Touch() { last_message_ns_ = absl::GetCurrentTimeNanos(); }
  int ended() const { return ended_.load(); }
  int64_t timeout_ns() const { return timeout_ns_.load(); }

 private:
  std::atomic<int64_t> last_message_ns_{absl::GetCurrentTimeNanos()};
  std::atomic<int> ended_{0};
  std::atomic<int64_t> timeout_ns_{0};
};

TEST(UploadStallWatchdogTest, EndsAnUploadThatSendsNothing) {
  UploadStallWatchdog watchdog(absl::Milliseconds(100));
  FakeUpload upload;
  watchdog.Add(&upload);
  EXPECT_TRUE(testing::WaitFor([&] { return upload.ended() > 0; }, absl::Seconds(10)));
  EXPECT_EQ(upload.timeout_ns(), absl::ToInt64Nanoseconds(absl::Milliseconds(100)));
  watchdog.Remove(&upload);
}

TEST(UploadStallWatchdogTest, SparesAnUploadThatKeepsSending) {
  UploadStallWatchdog watchdog(absl::Milliseconds(400));
  FakeUpload busy;
  FakeUpload idle;
  watchdog.Add(&busy);
  watchdog.Add(&idle);
  // Messages every 20 ms for as long as the idle one takes to be ended (bounded).
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (idle.ended() == 0 && absl::Now() < give_up) {
    busy.Touch();
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_GT(idle.ended(), 0);
  EXPECT_EQ(busy.ended(), 0);
  watchdog.Remove(&busy);
  watchdog.Remove(&idle);
}

TEST(UploadStallWatchdogTest, RemovedUploadIsNotEnded) {
  UploadStallWatchdog watchdog(absl::Milliseconds(10));
  FakeUpload upload;
  watchdog.Add(&upload);
  watchdog.Remove(&upload);
  FakeUpload witness;  // added after: ended once the watchdog has passed over it
  watchdog.Add(&witness);
  EXPECT_TRUE(testing::WaitFor([&] { return witness.ended() > 0; }, absl::Seconds(10)));
  EXPECT_EQ(upload.ended(), 0);
  watchdog.Remove(&witness);
}

TEST(UploadStallWatchdogTest, InfiniteTimeoutWatchesNothing) {
  UploadStallWatchdog watchdog(absl::InfiniteDuration());
  FakeUpload upload;
  watchdog.Add(&upload);
  watchdog.Remove(&upload);
  EXPECT_EQ(upload.ended(), 0);
}

}  // namespace
}  // namespace timbre
