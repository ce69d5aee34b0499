#include "server/build/file_work_queue.h"

#include <atomic>
#include <functional>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "server/status/rejection.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::StatusIs;
using ::timbre::testing::WaitFor;

// Holds the worker before its first task until released.
struct Gate {
  std::atomic<bool> armed{true};
  absl::Notification held, release;
  std::function<void()> Hook() {
    return [this] {
      if (!armed.exchange(false)) return;
      held.Notify();
      release.WaitForNotification();
    };
  }
};

TEST(FileWorkQueueTest, RunsEveryTaskOnceInOrder) {
  auto queue = FileWorkQueue::Create({});
  ASSERT_THAT(queue, IsOk());
  absl::Mutex mutex;
  std::vector<int> ran;
  for (int i = 0; i < 20; ++i) {
    ASSERT_THAT((*queue)->Run([&, i] {
      absl::MutexLock lock(&mutex);
      ran.push_back(i);
    }),
                IsOk());
  }
  ASSERT_TRUE(WaitFor([&] {
    absl::MutexLock lock(&mutex);
    return ran.size() == 20;
  }));
  absl::MutexLock lock(&mutex);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(ran[i], i);
}

TEST(FileWorkQueueTest, AFullQueueRefusesAtOnceAsOverloadedAndDropsTheTask) {
  Gate gate;
  FileWorkQueue::Options options;
  options.max_queued = 2;
  options.before_task = gate.Hook();
  auto queue = FileWorkQueue::Create(options);
  ASSERT_THAT(queue, IsOk());
  std::atomic<int> ran{0};
  ASSERT_THAT((*queue)->Run([&] { ++ran; }), IsOk());
  ASSERT_TRUE(gate.held.WaitForNotificationWithTimeout(absl::Seconds(20)));  // running, held
  EXPECT_EQ((*queue)->waiting(), 0);
  ASSERT_THAT((*queue)->Run([&] { ++ran; }), IsOk());
  ASSERT_THAT((*queue)->Run([&] { ++ran; }), IsOk());
  EXPECT_EQ((*queue)->waiting(), 2);
  bool refused_ran = false;
  const absl::Status refused = (*queue)->Run([&] { refused_ran = true; });
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("2 file operations")));
  EXPECT_EQ(RejectionReasonOf(refused), RejectionReason::kOverloaded);
  gate.release.Notify();
  ASSERT_TRUE(WaitFor([&] { return ran.load() == 3; }));
  EXPECT_FALSE(refused_ran);
  EXPECT_THAT((*queue)->Run([&] { ++ran; }), IsOk()) << "room again once the queue drains";
  EXPECT_TRUE(WaitFor([&] { return ran.load() == 4; }));  // before `ran` goes out of scope
}

TEST(FileWorkQueueTest, DestructionRunsTheTasksAlreadyQueued) {
  Gate gate;
  FileWorkQueue::Options options;
  options.before_task = gate.Hook();
  auto queue = FileWorkQueue::Create(options);
  ASSERT_THAT(queue, IsOk());
  std::atomic<int> ran{0};
  for (int i = 0; i < 5; ++i) ASSERT_THAT((*queue)->Run([&] { ++ran; }), IsOk());
  ASSERT_TRUE(gate.held.WaitForNotificationWithTimeout(absl::Seconds(20)));
  std::thread release([&] { gate.release.Notify(); });
  queue->reset();  // returns once every queued task has run
  release.join();
  EXPECT_EQ(ran.load(), 5);
}

TEST(FileWorkQueueTest, SeveralThreadsRunTasksSideBySide) {
  FileWorkQueue::Options options;
  options.threads = 2;
  auto queue = FileWorkQueue::Create(options);
  ASSERT_THAT(queue, IsOk());
  // Each task waits for the other: they finish only if two threads run them at once.
  absl::Notification first, second;
  std::atomic<int> done{0};
  ASSERT_THAT((*queue)->Run([&] {
    first.Notify();
    if (second.WaitForNotificationWithTimeout(absl::Seconds(20))) ++done;
  }),
              IsOk());
  ASSERT_THAT((*queue)->Run([&] {
    second.Notify();
    if (first.WaitForNotificationWithTimeout(absl::Seconds(20))) ++done;
  }),
              IsOk());
  ASSERT_TRUE(WaitFor([&] { return done.load() == 2; }));
}

TEST(FileWorkQueueTest, CreateRefusesNoThreadsAndNoQueue) {
  FileWorkQueue::Options no_threads;
  no_threads.threads = 0;
  EXPECT_THAT(FileWorkQueue::Create(no_threads),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("threads is 0")));
  FileWorkQueue::Options no_queue;
  no_queue.max_queued = 0;
  EXPECT_THAT(FileWorkQueue::Create(no_queue),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("max_queued is 0")));
}

}  // namespace
}  // namespace timbre
