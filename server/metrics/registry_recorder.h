// RegistryRecorder and SpeakerGauges: the speaker registry as seen by operators.
//
// RegistryRecorder is the registry's observer: it records each index load and eviction in the
// server's metrics and logs it. SpeakerGauges is a Prometheus collectable read at scrape time:
//   timbre_speakers{state}              speakers by state: loaded, loading, failed, unloaded
//   timbre_index_memory_bytes           memory of the loaded indexes, charged against the budget
//   timbre_index_mapped_bytes           memory-mapped index files (not charged)
//   timbre_index_memory_budget_bytes    the memory budget; 0 = unlimited
//   timbre_speaker_version{speaker}     the version serving each loaded speaker (its number,
//                                       0 for an RVC file); absent for speakers not loaded
//
// Thread-safe.
#ifndef TIMBRE_SERVER_METRICS_REGISTRY_RECORDER_H_
#define TIMBRE_SERVER_METRICS_REGISTRY_RECORDER_H_

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "server/metrics/server_metrics.h"
#include "server/serving/speaker_registry.h"

namespace timbre {

class RegistryRecorder final : public SpeakerRegistryObserver {
 public:
  // `metrics` must outlive the recorder.
  explicit RegistryRecorder(ServerMetrics* metrics) : metrics_(metrics) {}

  void OnLoadFinished(absl::string_view speaker, const absl::Status& status,
                      absl::Duration duration) override;
  void OnEvicted(absl::string_view speaker, int64_t bytes) override;

 private:
  ServerMetrics* metrics_;
};

class SpeakerGauges final : public prometheus::Collectable {
 public:
  // `registry` must outlive the collectable's registration with an exposer.
  explicit SpeakerGauges(const SpeakerRegistry* registry) : registry_(registry) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const SpeakerRegistry* registry_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_METRICS_REGISTRY_RECORDER_H_
