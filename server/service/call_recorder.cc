#include "server/service/call_recorder.h"

#include "server/service/grpc_status.h"
#include "spdlog/spdlog.h"

namespace timbre {

grpc::Status CallRecorder::Record(grpc::Status status, int64_t frames) {
  const absl::Duration latency = absl::Now() - start_;
  metrics_->RecordCall(method_, status.error_code(), latency, frames, speaker_);
  if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
    metrics_->RecordRejected(kRejectedInvalid);
  }
  if (!status.ok()) {
    spdlog::info("{} failed: {} {}", method_, GrpcCodeName(status.error_code()),
                 status.error_message());
  } else {
    spdlog::debug("{} ok: {} frames in {} us", method_, frames,
                  absl::ToInt64Microseconds(latency));
  }
  return status;
}

}  // namespace timbre
