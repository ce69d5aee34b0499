#include "server/metrics/server_metrics.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "google/protobuf/descriptor.h"

#include "server/security/security_options.h"
#include "server/status/rejection.h"
#include "timbre/v1/index_builder.pb.h"
#include "timbre/v1/timbre.pb.h"

namespace timbre {
namespace {

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      25e-6, 50e-6, 100e-6, 200e-6, 300e-6, 400e-6, 500e-6, 650e-6, 800e-6, 1e-3, 1.25e-3,
      1.5e-3, 2e-3, 2.5e-3, 3e-3, 4e-3, 5e-3, 7.5e-3, 10e-3, 15e-3, 25e-3, 50e-3, 100e-3,
      250e-3, 500e-3, 1.0, 2.5, 10.0};
  return *buckets;
}

// Index loads: a few ms for a small or memory-mapped index, minutes for 600 MB on a slow disk.
const prometheus::Histogram::BucketBoundaries& LoadBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
      300.0, 600.0};
  return *buckets;
}

// Build jobs: seconds for a small feature set to hours for k-means over millions of frames.
const prometheus::Histogram::BucketBoundaries& BuildBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0};
  return *buckets;
}

// A metric family named `name` with `help`, registered in `registry`.
template <typename Builder>
auto& Register(Builder builder, prometheus::Registry& registry, const char* name,
               const char* help) {
  return builder.Name(name).Help(help).Register(registry);
}

}  // namespace

const char* GrpcCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
  }
}

absl::string_view RejectedReasonOfCode(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT: return kRejectedInvalid;
    case grpc::StatusCode::UNAUTHENTICATED: return kRejectedUnauthenticated;
    case grpc::StatusCode::PERMISSION_DENIED: return kRejectedPermissionDenied;
    default: return {};
  }
}

absl::string_view MethodLabel(absl::string_view path) {
  // "/<package>.<Service>/<Method>".
  const std::vector<absl::string_view> parts = absl::StrSplit(path, '/');
  if (parts.size() != 3 || !parts[0].empty()) return {};
  // The files of the timbre.v1 services, reached through their messages so that they are linked.
  for (const google::protobuf::FileDescriptor* file :
       {v1::BlendRequest::descriptor()->file(), v1::BuildIndexRequest::descriptor()->file()}) {
    for (int i = 0; i < file->service_count(); ++i) {
      const google::protobuf::ServiceDescriptor* service = file->service(i);
      if (service->full_name() != parts[1]) continue;
      const google::protobuf::MethodDescriptor* method =
          service->FindMethodByName(std::string(parts[2]));
      if (method != nullptr) return method->name();
    }
  }
  return {};
}

ServerMetrics::ServerMetrics(prometheus::Registry& registry, Options options)
    : options_(options),
      latency_(Register(prometheus::BuildHistogram(), registry, "timbre_rpc_duration_seconds",
                        "Server-side latency of timbre RPCs (stream blocks for BlendStream)")),
      calls_(Register(prometheus::BuildCounter(), registry, "timbre_rpc_calls_total",
                      "timbre RPCs finished, by method and status code")),
      frames_(Register(prometheus::BuildCounter(), registry, "timbre_frames_total",
                       "Frames processed by successful calls")),
      in_flight_(Register(prometheus::BuildGauge(), registry, "timbre_rpcs_in_flight",
                          "timbre RPCs in progress, by method (open streams for BlendStream)")),
      rejected_(Register(prometheus::BuildCounter(), registry, "timbre_rejected_calls_total",
                         "Calls refused before being served, by reason")),
      stages_(Register(prometheus::BuildHistogram(), registry, "timbre_stage_duration_seconds",
                       "Time of successful calls by stage inside the server")),
      queue_(stages_.Add({{"stage", "queue"}}, LatencyBuckets())),
      search_(stages_.Add({{"stage", "search"}}, LatencyBuckets())),
      blend_(stages_.Add({{"stage", "blend"}}, LatencyBuckets())),
      batch_frames_(
          Register(prometheus::BuildHistogram(), registry, "timbre_search_batch_frames",
                   "Frames of the merged search batch each successful call was part of")
              .Add({}, prometheus::Histogram::BucketBoundaries{1, 4, 8, 16, 32, 48, 64, 96, 128,
                                                               256, 512, 1024, 4096})),
      loads_(Register(prometheus::BuildHistogram(), registry, "timbre_index_load_duration_seconds",
                      "Loads of speaker indexes, warm-up included, by result (ok or error)")),
      evictions_(Register(prometheus::BuildCounter(), registry, "timbre_index_evictions_total",
                          "Speakers unloaded to make room under the memory budget")
                     .Add({})),
      builds_finished_(Register(prometheus::BuildCounter(), registry,
                                "timbre_build_jobs_finished_total",
                                "Index build jobs finished, by final state")),
      build_durations_(Register(prometheus::BuildHistogram(), registry,
                                "timbre_build_job_duration_seconds",
                                "Duration of finished index build jobs, by final state")),
      credential_reloads_(Register(prometheus::BuildCounter(), registry,
                                   "timbre_credential_reloads_total",
                                   "Reloads of the TLS and bearer token files, by result")) {
  for (RejectionReason reason : kRejectionReasons) {
    rejected_.Add({{"reason", std::string(RejectionReasonName(reason))}});
  }
  for (absl::string_view reason :
       {kRejectedInvalid, kRejectedUnauthenticated, kRejectedPermissionDenied}) {
    rejected_.Add({{"reason", std::string(reason)}});
  }
  for (const char* result : {"ok", "error"}) loads_.Add({{"result", result}}, LoadBuckets());
  for (absl::string_view credentials : kReloadedCredentials) {
    for (absl::string_view result : kReloadResults) {
      credential_reloads_.Add(
          {{"credentials", std::string(credentials)}, {"result", std::string(result)}});
    }
  }
}

void ServerMetrics::RecordCall(absl::string_view method, grpc::StatusCode code,
                               absl::Duration latency, int64_t frames, absl::string_view speaker) {
  std::map<std::string, std::string> labels{{"method", std::string(method)},
                                            {"code", GrpcCodeName(code)}};
  std::map<std::string, std::string> frame_labels{{"method", std::string(method)}};
  if (options_.per_speaker) {
    // Only successful calls name their speaker: a failed call's name may be anything.
    const std::string label = code == grpc::StatusCode::OK ? std::string(speaker) : "";
    labels.emplace("speaker", label);
    frame_labels.emplace("speaker", label);
  }
  latency_.Add(labels, LatencyBuckets()).Observe(absl::ToDoubleSeconds(latency));
  labels.erase("speaker");
  calls_.Add(labels).Increment();
  if (code == grpc::StatusCode::OK && frames > 0) {
    frames_.Add(frame_labels).Increment(static_cast<double>(frames));
  }
}

void ServerMetrics::RecordStages(const SearchTiming& timing,
                                 std::optional<absl::Duration> blend) {
  queue_.Observe(absl::ToDoubleSeconds(timing.queued));
  search_.Observe(absl::ToDoubleSeconds(timing.search));
  if (blend.has_value()) blend_.Observe(absl::ToDoubleSeconds(*blend));
  batch_frames_.Observe(static_cast<double>(timing.batch_rows));
}

void ServerMetrics::CallStarted(absl::string_view method) {
  in_flight_.Add({{"method", std::string(method)}}).Increment();
}

void ServerMetrics::CallEnded(absl::string_view method) {
  in_flight_.Add({{"method", std::string(method)}}).Decrement();
}

void ServerMetrics::RecordRejected(absl::string_view reason) {
  rejected_.Add({{"reason", std::string(reason)}}).Increment();
}

void ServerMetrics::RecordRefusedBeforeHandler(absl::string_view path, grpc::StatusCode code,
                                       absl::Duration took) {
  RecordRejected(RejectedReasonOfCode(code));
  if (absl::string_view method = MethodLabel(path); !method.empty()) {
    RecordCall(method, code, took, /*frames=*/0);
  }
}

void ServerMetrics::RecordIndexLoad(bool ok, absl::Duration duration) {
  loads_.Add({{"result", ok ? "ok" : "error"}}, LoadBuckets())
      .Observe(absl::ToDoubleSeconds(duration));
}

void ServerMetrics::RecordEviction() { evictions_.Increment(); }

void ServerMetrics::RecordBuildJob(absl::string_view state, double seconds) {
  const prometheus::Labels labels{{"state", std::string(state)}};
  builds_finished_.Add(labels).Increment();
  build_durations_.Add(labels, BuildBuckets()).Observe(seconds);
}

void ServerMetrics::RecordCredentialReload(absl::string_view credentials,
                                           absl::string_view result) {
  credential_reloads_
      .Add({{"credentials", std::string(credentials)}, {"result", std::string(result)}})
      .Increment();
}

}  // namespace timbre
