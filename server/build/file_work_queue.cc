#include "server/build/file_work_queue.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/status/rejection.h"

namespace timbre {

absl::StatusOr<std::unique_ptr<FileWorkQueue>> FileWorkQueue::Create(Options options) {
  if (options.threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("FileWorkQueue threads is ", options.threads, "; it must be at least 1"));
  }
  if (options.max_queued < 1) {
    return absl::InvalidArgumentError(absl::StrCat("FileWorkQueue max_queued is ",
                                                   options.max_queued, "; it must be at least 1"));
  }
  std::unique_ptr<FileWorkQueue> queue(new FileWorkQueue(std::move(options)));
  for (int i = 0; i < queue->options_.threads; ++i) {
    queue->threads_.emplace_back([q = queue.get()] { q->Work(); });
  }
  return queue;
}

FileWorkQueue::~FileWorkQueue() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  for (std::thread& thread : threads_) thread.join();
}

absl::Status FileWorkQueue::Run(absl::AnyInvocable<void()> task) {
  absl::MutexLock lock(&mutex_);
  if (static_cast<int>(tasks_.size()) >= options_.max_queued) {
    return Rejected(absl::ResourceExhaustedError(absl::StrCat(
                        "the server is overloaded: ", options_.max_queued,
                        " file operations (imports, uploads, deletions, job records) are "
                        "already waiting; try again shortly")),
                    RejectionReason::kOverloaded);
  }
  tasks_.push_back(std::move(task));
  return absl::OkStatus();
}

int FileWorkQueue::waiting() const {
  absl::MutexLock lock(&mutex_);
  return static_cast<int>(tasks_.size());
}

void FileWorkQueue::Work() {
  for (;;) {
    absl::AnyInvocable<void()> task;
    {
      absl::MutexLock lock(&mutex_);
      mutex_.Await(absl::Condition(
          +[](FileWorkQueue* q) ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mutex_) {
            return q->stopping_ || !q->tasks_.empty();
          },
          this));
      if (tasks_.empty()) return;  // stopping, and nothing left to run
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    if (options_.before_task) options_.before_task();
    task();
  }
}

}  // namespace timbre
