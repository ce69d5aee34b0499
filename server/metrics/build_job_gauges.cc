#include "server/metrics/build_job_gauges.h"

#include "absl/strings/ascii.h"
#include "absl/strings/strip.h"
#include "server/metrics/gauge_family.h"

namespace timbre {

using timbre::v1::BuildJob;

std::string BuildJobStateLabel(BuildJob::State state) {
  const std::string name = absl::AsciiStrToLower(BuildJob::State_Name(state));
  return std::string(absl::StripPrefix(name, "state_"));
}

std::vector<prometheus::MetricFamily> BuildJobGauges::Collect() const {
  const JobStateCounts counts = jobs_->CountByState();
  prometheus::MetricFamily jobs = GaugeFamily("timbre_build_jobs", "Index build jobs by state");
  for (int state = BuildJob::State_MIN; state <= BuildJob::State_MAX; ++state) {
    if (state == BuildJob::STATE_UNSPECIFIED || !BuildJob::State_IsValid(state)) continue;
    AddGaugeSample(jobs, static_cast<double>(counts[state]),
                   {{"state", BuildJobStateLabel(static_cast<BuildJob::State>(state))}});
  }
  return {std::move(jobs)};
}

}  // namespace timbre
