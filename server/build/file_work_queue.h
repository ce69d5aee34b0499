// FileWorkQueue: runs the file work of the build service's calls (importing and hashing a
// feature set, writing an upload's chunks and checking its files, deleting a set, writing a job
// record) on threads of its own, so that the threads that take calls never wait on the disk.
//
// Tasks run in the order they were queued, each once. A full queue refuses a task at once
// (RESOURCE_EXHAUSTED, marked RejectionReason::kOverloaded), so a burst of imports cannot pile up
// without bound. The destructor runs every task already queued before it stops: a task that
// finishes a call must run, or the call would never end.
//
// Thread-safe.
#ifndef TIMBRE_SERVER_BUILD_FILE_WORK_QUEUE_H_
#define TIMBRE_SERVER_BUILD_FILE_WORK_QUEUE_H_

#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace timbre {

class FileWorkQueue {
 public:
  struct Options {
    // Threads running tasks, >= 1. Default 1: the work is bound by one disk, and one thread
    // keeps the builds' CPU for the build and the searches.
    int threads = 1;
    // Most tasks waiting (not counting the running ones), >= 1; more are refused. Default 64.
    int max_queued = 64;
    // Called on the worker before each task. Lets a test hold the worker. Default none.
    std::function<void()> before_task;
  };

  // Starts the threads. Errors: INVALID_ARGUMENT naming the option for threads or max_queued
  // below 1.
  static absl::StatusOr<std::unique_ptr<FileWorkQueue>> Create(Options options);

  // Runs every queued task, then stops the threads.
  ~FileWorkQueue();

  // Queues `task`. Errors: RESOURCE_EXHAUSTED (RejectionReason::kOverloaded) when max_queued
  // tasks are waiting; the task is then dropped without running.
  absl::Status Run(absl::AnyInvocable<void()> task);

  // Tasks queued and not yet started.
  int waiting() const;

 private:
  explicit FileWorkQueue(Options options) : options_(std::move(options)) {}
  void Work();

  const Options options_;
  mutable absl::Mutex mutex_;
  std::deque<absl::AnyInvocable<void()>> tasks_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_BUILD_FILE_WORK_QUEUE_H_
