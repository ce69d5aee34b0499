#include "server/rpc/call_recorder.h"

#include <optional>

#include "absl/strings/string_view.h"
#include "server/rpc/grpc_status.h"
#include "server/status/rejection.h"
#include "spdlog/spdlog.h"

namespace timbre {
namespace {

// The reason `status` counts as a rejected call in the metrics; empty if it does not.
absl::string_view RejectedReason(const absl::Status& status,
                                 const std::optional<RejectionReason>& marked) {
  if (marked.has_value()) return RejectionReasonName(*marked);
  return RejectedReasonOfCode(static_cast<grpc::StatusCode>(status.code()));
}

}  // namespace

grpc::Status CallRecorder::Record(const absl::Status& status, int64_t frames) {
  const absl::Duration latency = absl::Now() - start_;
  grpc::Status answer = ToGrpcStatus(status);
  metrics_->RecordCall(method_, answer.error_code(), latency, frames, speaker_);
  const std::optional<RejectionReason> marked = RejectionReasonOf(status);
  if (const absl::string_view reason = RejectedReason(status, marked); !reason.empty()) {
    metrics_->RecordRejected(reason);
  }
  if (marked == RejectionReason::kOverloaded || marked == RejectionReason::kDeadline) {
    // Overload sheds calls by the thousand; the metrics count them, the log would drown.
    spdlog::debug("{} shed: {} {}", method_, GrpcCodeName(answer.error_code()),
                  answer.error_message());
  } else if (!status.ok()) {
    spdlog::info("{} failed: {} {}", method_, GrpcCodeName(answer.error_code()),
                 answer.error_message());
  } else {
    spdlog::debug("{} ok: {} frames in {} us", method_, frames,
                  absl::ToInt64Microseconds(latency));
  }
  return answer;
}

}  // namespace timbre
