// ServerMetrics: the Prometheus metrics of the RPC layer, recorded once per call.
//
//   timbre_rpc_duration_seconds{method,code}   histogram of server-side call latency
//   timbre_rpc_calls_total{method,code}        calls (stream blocks count as BlendStream calls)
//   timbre_frames_total{method}                frames received in successful calls
//   timbre_stage_duration_seconds{stage}       queue / search / blend time of successful calls
//   timbre_search_batch_frames                 frames of the search batch each call joined
// Latency buckets run from 25 us to 10 s, resolving well below 1 ms.
//
// Thread-safe.
#ifndef TIMBRE_SERVER_SERVICE_SERVER_METRICS_H_
#define TIMBRE_SERVER_SERVICE_SERVER_METRICS_H_

#include <memory>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/support/status.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/core/search_scheduler.h"

namespace timbre {

class ServerMetrics {
 public:
  explicit ServerMetrics(prometheus::Registry& registry);

  // One finished call (or stream block) of `method`.
  void RecordCall(absl::string_view method, grpc::StatusCode code, absl::Duration latency,
                  int64_t frames);
  // Where a successful call's time went inside the server.
  void RecordStages(const SearchTiming& timing, absl::Duration blend);

 private:
  prometheus::Family<prometheus::Histogram>& latency_;
  prometheus::Family<prometheus::Counter>& calls_;
  prometheus::Family<prometheus::Counter>& frames_;
  prometheus::Family<prometheus::Histogram>& stages_;
  prometheus::Histogram& queue_;
  prometheus::Histogram& search_;
  prometheus::Histogram& blend_;
  prometheus::Histogram& batch_frames_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_SERVICE_SERVER_METRICS_H_
