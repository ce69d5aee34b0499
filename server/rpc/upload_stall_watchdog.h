// UploadStallWatchdog: ends the uploads whose client has stopped sending, so that a client that
// sends one byte a second (or nothing) cannot hold a stream, its staging files and its partial
// message buffer for ever.
//
// gRPC hands a reactor only whole messages, so the watchdog measures the time since an upload's
// last complete message: a client trickling a 4 MB chunk byte by byte looks stalled too. Every
// `check_interval` a thread asks each registered upload how long it has been waiting and ends
// those past the timeout (StallableUpload::EndStalled).
//
// Thread-safe. Lock order: the watchdog's mutex, then an upload's own lock (EndStalled); uploads
// must not call Add or Remove while holding a lock EndStalled takes.
#ifndef TIMBRE_SERVER_RPC_UPLOAD_STALL_WATCHDOG_H_
#define TIMBRE_SERVER_RPC_UPLOAD_STALL_WATCHDOG_H_

#include <set>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace timbre {

// An upload the watchdog can end.
class StallableUpload {
 public:
  // When the upload last received a complete message (or started). Thread-safe.
  virtual absl::Time last_message() const = 0;
  // Ends the upload: its client sent nothing for `timeout`. Thread-safe; a no-op once the upload
  // has ended.
  virtual void EndStalled(absl::Duration timeout) = 0;

 protected:
  ~StallableUpload() = default;
};

class UploadStallWatchdog {
 public:
  // `timeout`: longest wait for an upload's next message; infinite disables the watchdog (no
  // thread). Checked every timeout / 4, at least every second and at most every 10 ms.
  explicit UploadStallWatchdog(absl::Duration timeout);
  // Stops the thread. REQUIRES: every upload has been removed.
  ~UploadStallWatchdog();
  UploadStallWatchdog(const UploadStallWatchdog&) = delete;
  UploadStallWatchdog& operator=(const UploadStallWatchdog&) = delete;

  absl::Duration timeout() const { return timeout_; }

  // Watches `upload` until Remove. Neither may be called while holding the upload's lock.
  void Add(StallableUpload* upload) ABSL_LOCKS_EXCLUDED(mutex_);
  void Remove(StallableUpload* upload) ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  void Run();

  const absl::Duration timeout_;
  const absl::Duration check_interval_;
  absl::Mutex mutex_;
  std::set<StallableUpload*> uploads_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_RPC_UPLOAD_STALL_WATCHDOG_H_
