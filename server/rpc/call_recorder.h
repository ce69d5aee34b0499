// CallRecorder: finishes one RPC (or stream block) exactly once: turns its absl::Status into the
// grpc::Status it ends with, records its metrics and, for errors, its log line (at debug level
// for calls shed under overload, refused as overloaded or past their deadline, which the metrics
// count). Used by every handler so that observability stays in one place. The call counts as in
// flight from the recorder's construction to its destruction (for BlendStream: the whole stream).
//
// A call refused before being served is counted once in timbre_rejected_calls_total, by the
// reason its status was marked with (RejectionReason, server/status/rejection.h: overloaded,
// deadline, too_large), else by its code alone (RejectedReasonOfCode: INVALID_ARGUMENT invalid,
// PERMISSION_DENIED permission_denied). Other errors, a full disk's RESOURCE_EXHAUSTED among them,
// are the server's failures, not refusals. Calls refused by the bearer token check, and requests
// that are not valid messages, never reach a handler; ServerMetrics::RecordRefusedBeforeHandler
// counts them.
//
// Thread-compatible; each call owns its recorder.
#ifndef TIMBRE_SERVER_RPC_CALL_RECORDER_H_
#define TIMBRE_SERVER_RPC_CALL_RECORDER_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/support/status.h"
#include "server/metrics/server_metrics.h"

namespace timbre {

class CallRecorder {
 public:
  CallRecorder(ServerMetrics* metrics, const char* method)
      : metrics_(metrics), method_(method), start_(absl::Now()) {
    metrics_->CallStarted(method_);
  }
  ~CallRecorder() { metrics_->CallEnded(method_); }
  CallRecorder(const CallRecorder&) = delete;
  CallRecorder& operator=(const CallRecorder&) = delete;

  // The speaker the call is for: labels its metrics when per-speaker metrics are on.
  void set_speaker(std::string speaker) { speaker_ = std::move(speaker); }

  // Restarts the clock (a stream's next block).
  void Restart() { start_ = absl::Now(); }

  // Records the outcome and returns `status` as the grpc::Status to finish the RPC with (same
  // code and message). A refusal also counts as a rejected call (see the file comment).
  grpc::Status Record(const absl::Status& status, int64_t frames);

  // Records where a successful call's time went inside the server; `blend` none for a call that
  // does not blend.
  void RecordStages(const SearchTiming& timing, std::optional<absl::Duration> blend) {
    metrics_->RecordStages(timing, blend);
  }

 private:
  ServerMetrics* metrics_;
  const char* method_;
  std::string speaker_;
  absl::Time start_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_RPC_CALL_RECORDER_H_
