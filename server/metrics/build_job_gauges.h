// BuildJobGauges: the build job queue as seen by operators, a Prometheus collectable read at
// scrape time:
//   timbre_build_jobs{state}   build jobs in each state: queued, running, succeeded, failed,
//                              cancelled; every series is present, at 0 when no job is in it
// Every job the queue lists counts, so the finished jobs of earlier runs (whose records the queue
// keeps) do too. How long finished jobs took is recorded as they finish (ServerMetrics::
// RecordBuildJob), with the same state labels (BuildJobStateLabel).
//
// Thread-safe.
#ifndef TIMBRE_SERVER_METRICS_BUILD_JOB_GAUGES_H_
#define TIMBRE_SERVER_METRICS_BUILD_JOB_GAUGES_H_

#include <string>
#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "server/build/build_job_queue.h"

namespace timbre {

// A build job's state as a metric label: "succeeded" for STATE_SUCCEEDED.
std::string BuildJobStateLabel(timbre::v1::BuildJob::State state);

class BuildJobGauges final : public prometheus::Collectable {
 public:
  // `jobs` must outlive every Collect(): stop the exposer it is registered with (or remove it
  // from the exposer) before destroying the queue.
  explicit BuildJobGauges(const BuildJobQueue* jobs) : jobs_(jobs) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const BuildJobQueue* jobs_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_METRICS_BUILD_JOB_GAUGES_H_
