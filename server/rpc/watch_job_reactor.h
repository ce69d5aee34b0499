// WatchJobReactor: one IndexBuilder.WatchJob call, a server stream of a build job's record.
//
// The reactor subscribes to the job in BuildJobQueue and writes its record at every change,
// skipping records that became stale while a write was in flight (only the newest pending record
// is written). After a record with a final state it finishes the call with OK. A client that goes
// away ends the subscription.
//
// Thread-safe: queue notifications arrive on the build worker, write completions on gRPC threads.
#ifndef TIMBRE_SERVER_RPC_WATCH_JOB_REACTOR_H_
#define TIMBRE_SERVER_RPC_WATCH_JOB_REACTOR_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "server/build/build_job_queue.h"
#include "server/rpc/call_recorder.h"
#include "timbre/v1/index_builder.pb.h"

namespace timbre {

class WatchJobReactor final : public grpc::ServerWriteReactor<timbre::v1::BuildJob> {
 public:
  // `jobs` and `metrics` must outlive the call.
  WatchJobReactor(BuildJobQueue* jobs, ServerMetrics* metrics, const std::string& id);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  void Offer(const timbre::v1::BuildJob& job);
  // Starts the next write or finishes. REQUIRES: no write in flight.
  void Pump() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  CallRecorder recorder_;
  std::unique_ptr<JobWatch> watch_;
  absl::Mutex mutex_;
  std::optional<timbre::v1::BuildJob> pending_ ABSL_GUARDED_BY(mutex_);
  timbre::v1::BuildJob writing_ ABSL_GUARDED_BY(mutex_);
  bool write_in_flight_ ABSL_GUARDED_BY(mutex_) = false;
  bool finished_ ABSL_GUARDED_BY(mutex_) = false;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_RPC_WATCH_JOB_REACTOR_H_
