#include "server/service/server_metrics.h"

#include <string>

#include "server/service/grpc_status.h"

namespace timbre {
namespace {

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      25e-6, 50e-6, 100e-6, 200e-6, 300e-6, 400e-6, 500e-6, 650e-6, 800e-6, 1e-3, 1.25e-3,
      1.5e-3, 2e-3, 2.5e-3, 3e-3, 4e-3, 5e-3, 7.5e-3, 10e-3, 15e-3, 25e-3, 50e-3, 100e-3,
      250e-3, 500e-3, 1.0, 2.5, 10.0};
  return *buckets;
}

}  // namespace

ServerMetrics::ServerMetrics(prometheus::Registry& registry)
    : latency_(prometheus::BuildHistogram()
                   .Name("timbre_rpc_duration_seconds")
                   .Help("Server-side latency of timbre RPCs (stream blocks for BlendStream)")
                   .Register(registry)),
      calls_(prometheus::BuildCounter()
                 .Name("timbre_rpc_calls_total")
                 .Help("timbre RPCs finished, by method and status code")
                 .Register(registry)),
      frames_(prometheus::BuildCounter()
                  .Name("timbre_frames_total")
                  .Help("Frames processed by successful calls")
                  .Register(registry)),
      stages_(prometheus::BuildHistogram()
                  .Name("timbre_stage_duration_seconds")
                  .Help("Time of successful calls by stage inside the server")
                  .Register(registry)),
      queue_(stages_.Add({{"stage", "queue"}}, LatencyBuckets())),
      search_(stages_.Add({{"stage", "search"}}, LatencyBuckets())),
      blend_(stages_.Add({{"stage", "blend"}}, LatencyBuckets())),
      batch_frames_(prometheus::BuildHistogram()
                        .Name("timbre_search_batch_frames")
                        .Help("Frames of the merged search batch each successful call was part of")
                        .Register(registry)
                        .Add({}, prometheus::Histogram::BucketBoundaries{
                                     1, 4, 8, 16, 32, 48, 64, 96, 128, 256, 512, 1024, 4096})) {}

void ServerMetrics::RecordCall(absl::string_view method, grpc::StatusCode code,
                               absl::Duration latency, int64_t frames) {
  const std::map<std::string, std::string> labels{{"method", std::string(method)},
                                                   {"code", GrpcCodeName(code)}};
  latency_.Add(labels, LatencyBuckets()).Observe(absl::ToDoubleSeconds(latency));
  calls_.Add(labels).Increment();
  if (code == grpc::StatusCode::OK && frames > 0) {
    frames_.Add({{"method", std::string(method)}}).Increment(static_cast<double>(frames));
  }
}

void ServerMetrics::RecordStages(const SearchTiming& timing, absl::Duration blend) {
  queue_.Observe(absl::ToDoubleSeconds(timing.queued));
  search_.Observe(absl::ToDoubleSeconds(timing.search));
  blend_.Observe(absl::ToDoubleSeconds(blend));
  batch_frames_.Observe(static_cast<double>(timing.batch_rows));
}

}  // namespace timbre
