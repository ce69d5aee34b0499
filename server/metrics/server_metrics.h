// ServerMetrics: the Prometheus metrics of the server, recorded in the RPC layer.
//
//   timbre_rpc_duration_seconds{method,code}        histogram of server-side call latency
//   timbre_rpc_calls_total{method,code}             calls (stream blocks count as BlendStream calls)
//   timbre_frames_total{method}                     frames received in successful calls
//   timbre_rpcs_in_flight{method}                   calls in progress (open streams for BlendStream)
//   timbre_rejected_calls_total{reason}             calls refused before being served, by reason:
//       overloaded        a full queue (search or build) or memory held by loads in progress
//       deadline          the call's deadline passed while it waited for a search worker
//       too_large         beyond an operator's limit: an index larger than the memory budget,
//                         an upload larger than the largest upload
//       invalid           a malformed request (INVALID_ARGUMENT)
//       unauthenticated   a missing or unknown bearer token (UNAUTHENTICATED)
//       permission_denied a token or path without the rights the call needs (PERMISSION_DENIED)
//   timbre_stage_duration_seconds{stage}            queue / search / blend time of successful calls
//   timbre_search_batch_frames                      frames of the search batch each call joined
//   timbre_index_load_duration_seconds{result}      index loads (warm-up included), ok or error
//   timbre_index_evictions_total                    speakers unloaded to make room under the budget
//   timbre_build_jobs_finished_total{state}         build jobs finished, by final state
//   timbre_build_job_duration_seconds{state}        duration of finished build jobs
//   timbre_credential_reloads_total{credentials,result}
//                                                   reloads of the TLS files (credentials="tls")
//                                                   and token files ("tokens") by result:
//                                                   installed, unchanged, failed (the files on
//                                                   disk fail a check; the ones in use stay)
// With Options::per_speaker, latency and frames also carry a `speaker` label: the speaker of a
// successful call, empty for failed calls (so that unknown names never create series).
// Speakers by state and index memory (SpeakerGauges) and build jobs by state (BuildJobGauges) are
// collected at scrape time.
// Latency buckets run from 25 us to 10 s, resolving well below 1 ms.
//
// Thread-safe.
#ifndef TIMBRE_SERVER_METRICS_SERVER_METRICS_H_
#define TIMBRE_SERVER_METRICS_SERVER_METRICS_H_

#include <memory>
#include <optional>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/support/status.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/serving/search_scheduler.h"

namespace timbre {

// Reasons of RecordRejected; every one's series exists from the start, at 0. The core marks the
// refusals whose code alone does not say why (RejectionReason in server/status/rejection.h, whose
// RejectionReasonName is the reason: overloaded, deadline, too_large); these three are refusals
// by their code alone, whoever returns them.
inline constexpr absl::string_view kRejectedInvalid = "invalid";
inline constexpr absl::string_view kRejectedUnauthenticated = "unauthenticated";
inline constexpr absl::string_view kRejectedPermissionDenied = "permission_denied";

// The reason a call refused with `code` counts under even when its status carries no
// RejectionReason: kRejectedInvalid for INVALID_ARGUMENT, kRejectedUnauthenticated for UNAUTHENTICATED,
// kRejectedPermissionDenied for PERMISSION_DENIED; empty for every other code.
absl::string_view RejectedReasonOfCode(grpc::StatusCode code);

// The canonical name of a gRPC code, e.g. "INVALID_ARGUMENT", for metric labels and logs.
const char* GrpcCodeName(grpc::StatusCode code);

// The method label of a call to `path`: "Blend" for "/timbre.v1.Timbre/Blend", and so for every
// method of the timbre.v1 services; empty for any other path.
absl::string_view MethodLabel(absl::string_view path);

class ServerMetrics {
 public:
  struct Options {
    // Label call latency and frames with the speaker too (one series per speaker, method and
    // code). Default false.
    bool per_speaker = false;
  };

  explicit ServerMetrics(prometheus::Registry& registry) : ServerMetrics(registry, Options()) {}
  ServerMetrics(prometheus::Registry& registry, Options options);

  // One finished call (or stream block) of `method` for `speaker` (may be empty).
  void RecordCall(absl::string_view method, grpc::StatusCode code, absl::Duration latency,
                  int64_t frames, absl::string_view speaker = {});
  // Where a successful call's time went inside the server.
  // `blend`: none for a call that does not blend (Search).
  void RecordStages(const SearchTiming& timing, std::optional<absl::Duration> blend);
  // A call of `method` started or ended (calls in flight).
  void CallStarted(absl::string_view method);
  void CallEnded(absl::string_view method);
  // A call refused before being served, by one of the reasons above (each is a series).
  void RecordRejected(absl::string_view reason);
  // A call to `path` (a method's full name, "/timbre.v1.Timbre/Blend") refused with `code`
  // before any handler ran (by the bearer token check, or because its request could not be
  // decoded) after `took`: a rejected call by its code and, if `path` names a method of
  // timbre.v1's services, a call of that method (MethodLabel); other paths create no series.
  void RecordRefusedBeforeHandler(absl::string_view path, grpc::StatusCode code,
                                  absl::Duration took);

  // A load of a speaker's index finished after `duration`, successfully or not.
  void RecordIndexLoad(bool ok, absl::Duration duration);
  // A speaker was unloaded to make room under the memory budget.
  void RecordEviction();

  // A build job finished in `state` (e.g. "succeeded", "failed", "cancelled") after `seconds`.
  void RecordBuildJob(absl::string_view state, double seconds);

  // A reload of `credentials` (kReloadedCredentials) ended with `result` (kReloadResults), as
  // SecurityOptions::on_reloaded tells it.
  void RecordCredentialReload(absl::string_view credentials, absl::string_view result);

 private:
  const Options options_;
  prometheus::Family<prometheus::Histogram>& latency_;
  prometheus::Family<prometheus::Counter>& calls_;
  prometheus::Family<prometheus::Counter>& frames_;
  prometheus::Family<prometheus::Gauge>& in_flight_;
  prometheus::Family<prometheus::Counter>& rejected_;
  prometheus::Family<prometheus::Histogram>& stages_;
  prometheus::Histogram& queue_;
  prometheus::Histogram& search_;
  prometheus::Histogram& blend_;
  prometheus::Histogram& batch_frames_;
  prometheus::Family<prometheus::Histogram>& loads_;
  prometheus::Counter& evictions_;
  prometheus::Family<prometheus::Counter>& builds_finished_;
  prometheus::Family<prometheus::Histogram>& build_durations_;
  prometheus::Family<prometheus::Counter>& credential_reloads_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_METRICS_SERVER_METRICS_H_
