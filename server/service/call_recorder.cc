#include "server/service/call_recorder.h"

#include "absl/strings/string_view.h"
#include "server/service/grpc_status.h"
#include "spdlog/spdlog.h"

namespace timbre {
namespace {

// The reason a call with `code` counts as rejected in the metrics; empty if it does not.
absl::string_view RejectedReason(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return kRejectedOverloaded;
    case grpc::StatusCode::DEADLINE_EXCEEDED: return kRejectedDeadline;
    case grpc::StatusCode::INVALID_ARGUMENT: return kRejectedInvalid;
    default: return {};
  }
}

}  // namespace

grpc::Status CallRecorder::Record(grpc::Status status, int64_t frames) {
  const absl::Duration latency = absl::Now() - start_;
  metrics_->RecordCall(method_, status.error_code(), latency, frames, speaker_);
  if (const absl::string_view reason = RejectedReason(status.error_code()); !reason.empty()) {
    metrics_->RecordRejected(reason);
  }
  if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED ||
      status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    // Overload sheds calls by the thousand; the metrics count them, the log would drown.
    spdlog::debug("{} shed: {} {}", method_, GrpcCodeName(status.error_code()),
                  status.error_message());
  } else if (!status.ok()) {
    spdlog::info("{} failed: {} {}", method_, GrpcCodeName(status.error_code()),
                 status.error_message());
  } else {
    spdlog::debug("{} ok: {} frames in {} us", method_, frames,
                  absl::ToInt64Microseconds(latency));
  }
  return status;
}

}  // namespace timbre
