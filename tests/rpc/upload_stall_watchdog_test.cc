#include "server/rpc/upload_stall_watchdog.h"

#include <atomic>

#include "absl/time/clock.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

class FakeUpload : public StallableUpload {
 public:
  // sending: the upload's client keeps sending, so its last message is always just now.
  explicit FakeUpload(bool sending = false) : sending_(sending) {}

  absl::Time last_message() const override { return sending_ ? absl::Now() : started_; }
  void EndStalled(absl::Duration timeout) override {
    ++ended_;
    timeout_ns_ = absl::ToInt64Nanoseconds(timeout);
  }
  int ended() const { return ended_.load(); }
  int64_t timeout_ns() const { return timeout_ns_.load(); }

 private:
  const bool sending_;
  const absl::Time started_ = absl::Now();
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
  UploadStallWatchdog watchdog(absl::Milliseconds(100));
  FakeUpload sending(/*sending=*/true);
  FakeUpload idle;
  watchdog.Add(&sending);
  watchdog.Add(&idle);
  // Each pass checks both: once the idle one has been ended in two passes, at least one whole
  // pass has looked at the sending one too.
  EXPECT_TRUE(testing::WaitFor([&] { return idle.ended() >= 2; }, absl::Seconds(10)));
  EXPECT_EQ(sending.ended(), 0);
  watchdog.Remove(&sending);
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
