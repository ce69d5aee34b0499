#include "server/rpc/upload_features_reactor.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/rpc/proto_convert.h"
#include "server/rpc/raw_message.h"

namespace timbre {

UploadFeaturesReactor::UploadFeaturesReactor(FeatureSetStore* store, FileWorkQueue* file_work,
                                             ServerMetrics* metrics,
                                             UploadStallWatchdog* watchdog,
                                             grpc::CallbackServerContext* context,
                                             grpc::ByteBuffer* response)
    : file_work_(file_work),
      watchdog_(watchdog),
      context_(context),
      response_(response),
      last_message_ns_(absl::GetCurrentTimeNanos()),
      recorder_(metrics, "UploadFeatures") {
  watchdog_->Add(this);
  absl::MutexLock lock(&mutex_);
  Schedule([this, store]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { Begin(store); });
}

void UploadFeaturesReactor::OnDone() {
  watchdog_->Remove(this);  // waits for a watchdog pass that may be ending this upload
  Release();
}

void UploadFeaturesReactor::Release() {
  bool last = false;
  {
    absl::MutexLock lock(&mutex_);
    last = --holds_ == 0;
  }
  if (last) delete this;
}

void UploadFeaturesReactor::Schedule(absl::AnyInvocable<void()> step) {
  ++holds_;
  ++steps_in_progress_;
  const absl::Status queued = file_work_->Run([this, step = std::move(step)]() mutable {
    {
      absl::MutexLock lock(&mutex_);
      if (!finished_) step();
      last_message_ns_.store(absl::GetCurrentTimeNanos(), std::memory_order_relaxed);
      --steps_in_progress_;
    }
    Release();
  });
  if (!queued.ok()) {
    --holds_;
    --steps_in_progress_;
    FinishWith(queued);
  }
}

void UploadFeaturesReactor::EndStalled(absl::Duration timeout) {
  absl::MutexLock lock(&mutex_);
  FinishWith(absl::DeadlineExceededError(absl::StrCat(
      "the upload sent no complete message for ", absl::FormatDuration(timeout),
      " (the server's upload stall timeout); nothing was stored")));
}

void UploadFeaturesReactor::Begin(FeatureSetStore* store) {
  absl::StatusOr<std::unique_ptr<FeatureSetUpload>> upload = store->BeginUpload();
  if (!upload.ok()) {
    FinishWith(upload.status());
    return;
  }
  upload_ = *std::move(upload);
  StartRead(&request_bytes_);
}

void UploadFeaturesReactor::OnReadDone(bool ok) {
  absl::MutexLock lock(&mutex_);
  if (finished_) return;  // ended by the watchdog while this read was pending
  Schedule([this, ok]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) { ReadDone(ok); });
}

void UploadFeaturesReactor::ReadDone(bool ok) {
  if (!ok && context_->IsCancelled()) {
    FinishWith(absl::CancelledError("the upload was cancelled; nothing was stored"));
    return;
  }
  if (!ok) {
    // End of the client's stream: verify, validate and publish.
    absl::StatusOr<FeatureSetInfo> info = upload_->Finish();
    if (!info.ok()) {
      FinishWith(info.status());
      return;
    }
    timbre::v1::FeatureSet feature_set;
    ToProto(*info, &feature_set);
    FinishWith(EncodeMessage(feature_set, response_));
    return;
  }
  ++messages_;
  if (absl::Status decoded = DecodeMessage(request_bytes_, &request_); !decoded.ok()) {
    FinishWith(absl::InvalidArgumentError(
        absl::StrCat("message ", messages_, " of the upload: ", decoded.message())));
    return;
  }
  if (absl::Status applied = Apply(request_); !applied.ok()) {
    FinishWith(applied);
    return;
  }
  StartRead(&request_bytes_);
}

absl::Status UploadFeaturesReactor::Apply(const timbre::v1::UploadFeaturesRequest& request) {
  switch (request.part_case()) {
    case timbre::v1::UploadFeaturesRequest::kFile:
      return upload_->BeginFile(request.file().name(),
                                static_cast<int64_t>(request.file().size_bytes()),
                                request.file().sha256());
    case timbre::v1::UploadFeaturesRequest::kChunk:
      return upload_->Append(request.chunk());
    default:
      return absl::InvalidArgumentError("an upload message must carry a file header or a chunk");
  }
}

void UploadFeaturesReactor::FinishWith(const absl::Status& status) {
  if (finished_) return;
  finished_ = true;
  // Dropping the upload removes its staging files unless Finish() published them.
  upload_.reset();
  Finish(recorder_.Record(status, 0));
}

}  // namespace timbre
