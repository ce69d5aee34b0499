// UploadFeaturesReactor: one IndexBuilder.UploadFeatures call, a client stream of file headers
// and chunks written straight into a FeatureSetUpload.
//
// Messages are read as raw bytes and decoded here, so that one that is not a valid
// UploadFeaturesRequest fails the upload with INVALID_ARGUMENT naming it, instead of reading as
// the end of the stream. Each message is applied as it arrives (so memory stays at one chunk);
// the first error ends the call with its status and the upload's staging files are removed. At
// the end of the stream the upload is verified and published, and the call answers with the new
// feature set. A call the client cancels publishes nothing, even when it stopped between two
// files. An upload whose client sends no complete message for the watchdog's timeout ends with
// DEADLINE_EXCEEDED and stores nothing (UploadStallWatchdog).
//
// The file work (creating the staging directory, writing each chunk, checking and publishing
// the files, removing them after an error) runs on the FileWorkQueue, never on gRPC's callback
// threads: each reaction queues its step, and the step starts the next read or finishes the
// call. When the queue is full the call ends with its RESOURCE_EXHAUSTED status at once.
//
// Thread-safe: gRPC's reactions, the queued steps and the watchdog meet under one mutex. Deletes
// itself once gRPC is done with it (OnDone) and no step of it is queued.
#ifndef TIMBRE_SERVER_RPC_UPLOAD_FEATURES_REACTOR_H_
#define TIMBRE_SERVER_RPC_UPLOAD_FEATURES_REACTOR_H_

#include <atomic>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "absl/functional/any_invocable.h"
#include "server/build/feature_set_store.h"
#include "server/build/file_work_queue.h"
#include "server/rpc/call_recorder.h"
#include "server/rpc/upload_stall_watchdog.h"
#include "timbre/v1/index_builder.pb.h"

namespace timbre {

class UploadFeaturesReactor final : public grpc::ServerReadReactor<grpc::ByteBuffer>,
                                    public StallableUpload {
 public:
  // `store`, `file_work`, `metrics` and `watchdog` must outlive the call; `context` and
  // `response` (the encoded timbre.v1.FeatureSet) are the call's.
  UploadFeaturesReactor(FeatureSetStore* store, FileWorkQueue* file_work, ServerMetrics* metrics,
                        UploadStallWatchdog* watchdog, grpc::CallbackServerContext* context,
                        grpc::ByteBuffer* response);

  void OnReadDone(bool ok) override;
  void OnDone() override;

  // When the server last became ready for the client's next message; the future while a step
  // of the upload is queued or running (the wait is then the server's, not the client's).
  absl::Time last_message() const override {
    if (steps_in_progress_.load() > 0) return absl::InfiniteFuture();
    return absl::FromUnixNanos(last_message_ns_.load(std::memory_order_relaxed));
  }
  void EndStalled(absl::Duration timeout) override ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  // Queues `step` on the file work queue; it runs under mutex_ unless the call has finished by
  // then. A full queue finishes the call with its status.
  void Schedule(absl::AnyInvocable<void()> step) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Drops one hold on this object (gRPC's or a queued step's); the last one deletes it.
  void Release() ABSL_LOCKS_EXCLUDED(mutex_);
  // The steps: begin the upload, and handle one finished read.
  void Begin(FeatureSetStore* store) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void ReadDone(bool ok) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  absl::Status Apply(const timbre::v1::UploadFeaturesRequest& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Records `status`, drops the upload (removing its staging files unless it was published) and
  // finishes the call. A no-op once finished.
  void FinishWith(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  FileWorkQueue* const file_work_;
  UploadStallWatchdog* const watchdog_;
  grpc::CallbackServerContext* const context_;
  grpc::ByteBuffer* const response_;
  std::atomic<int64_t> last_message_ns_;
  std::atomic<int> steps_in_progress_{0};  // queued or running
  absl::Mutex mutex_;
  bool finished_ ABSL_GUARDED_BY(mutex_) = false;
  // gRPC's hold (until OnDone) plus one per queued step.
  int holds_ ABSL_GUARDED_BY(mutex_) = 1;
  CallRecorder recorder_ ABSL_GUARDED_BY(mutex_);
  std::unique_ptr<FeatureSetUpload> upload_ ABSL_GUARDED_BY(mutex_);
  grpc::ByteBuffer request_bytes_ ABSL_GUARDED_BY(mutex_);  // the message being read
  timbre::v1::UploadFeaturesRequest request_ ABSL_GUARDED_BY(mutex_);
  int64_t messages_ ABSL_GUARDED_BY(mutex_) = 0;  // messages read so far
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_RPC_UPLOAD_FEATURES_REACTOR_H_
