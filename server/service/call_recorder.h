// CallRecorder: finishes one RPC (or stream block) exactly once: records its metrics and, for
// errors, its log line (at debug level for calls shed under overload, RESOURCE_EXHAUSTED and
// DEADLINE_EXCEEDED, which the metrics count). Used by every handler so that observability
// stays in one place. The call counts as in flight from the recorder's construction to its
// destruction (for BlendStream: the whole stream).
//
// A call refused before being served is counted once in timbre_rejected_calls_total, by its
// code: RESOURCE_EXHAUSTED as overloaded (a full search or build queue, or a request beyond a
// resource limit such as the memory budget), DEADLINE_EXCEEDED as deadline (a call whose deadline
// passed while it waited for a search worker), INVALID_ARGUMENT as invalid. Calls refused by the
// bearer token check never reach a handler; the server counts them (unauthenticated).
//
// Thread-compatible; each call owns its recorder.
#ifndef TIMBRE_SERVER_SERVICE_CALL_RECORDER_H_
#define TIMBRE_SERVER_SERVICE_CALL_RECORDER_H_

#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/support/status.h"
#include "server/service/server_metrics.h"

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

  // Records the outcome and returns `status` for the caller to finish the RPC with. A
  // RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED or INVALID_ARGUMENT status also counts as a rejected
  // call (see the file comment).
  grpc::Status Record(grpc::Status status, int64_t frames);

  // Records where a successful call's time went inside the server.
  void RecordStages(const SearchTiming& timing, absl::Duration blend) {
    metrics_->RecordStages(timing, blend);
  }

 private:
  ServerMetrics* metrics_;
  const char* method_;
  std::string speaker_;
  absl::Time start_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_SERVICE_CALL_RECORDER_H_
