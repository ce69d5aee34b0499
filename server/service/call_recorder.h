// CallRecorder: finishes one RPC (or stream block) exactly once: records its metrics and, for
// errors, its log line (at debug level for calls shed under overload, RESOURCE_EXHAUSTED and
// DEADLINE_EXCEEDED, which the metrics count). Used by every handler so that observability
// stays in one place.
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
      : metrics_(metrics), method_(method), start_(absl::Now()) {}

  // Restarts the clock (a stream's next block).
  void Restart() { start_ = absl::Now(); }

  // Records the outcome and returns `status` for the caller to finish the RPC with.
  grpc::Status Record(grpc::Status status, int64_t frames);

  // Records where a successful call's time went inside the server.
  void RecordStages(const SearchTiming& timing, absl::Duration blend) {
    metrics_->RecordStages(timing, blend);
  }

 private:
  ServerMetrics* metrics_;
  const char* method_;
  absl::Time start_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_SERVICE_CALL_RECORDER_H_
