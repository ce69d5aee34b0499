#include "server/rpc/upload_stall_watchdog.h"

#include <algorithm>

#include "absl/time/clock.h"

namespace timbre {

UploadStallWatchdog::UploadStallWatchdog(absl::Duration timeout)
    : timeout_(timeout),
      check_interval_(std::clamp(timeout / 4, absl::Milliseconds(10), absl::Seconds(1))) {
  if (timeout_ != absl::InfiniteDuration()) thread_ = std::thread([this] { Run(); });
}

UploadStallWatchdog::~UploadStallWatchdog() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void UploadStallWatchdog::Add(StallableUpload* upload) {
  absl::MutexLock lock(&mutex_);
  uploads_.insert(upload);
}

void UploadStallWatchdog::Remove(StallableUpload* upload) {
  absl::MutexLock lock(&mutex_);
  uploads_.erase(upload);
}

void UploadStallWatchdog::Run() {
  absl::MutexLock lock(&mutex_);
  while (!mutex_.AwaitWithTimeout(absl::Condition(&stopping_), check_interval_)) {
    const absl::Time now = absl::Now();
    // Under the lock: Remove (from the upload's OnDone) waits, so every upload here is alive.
    for (StallableUpload* upload : uploads_) {
      if (now - upload->last_message() > timeout_) upload->EndStalled(timeout_);
    }
  }
}

}  // namespace timbre
