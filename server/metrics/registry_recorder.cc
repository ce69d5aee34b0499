#include "server/metrics/registry_recorder.h"

#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "server/metrics/gauge_family.h"
#include "spdlog/spdlog.h"

namespace timbre {

void RegistryRecorder::OnLoadFinished(absl::string_view speaker, const absl::Status& status,
                                      absl::Duration duration) {
  metrics_->RecordIndexLoad(status.ok(), duration);
  if (status.ok()) {
    spdlog::info("speaker '{}' loaded in {} ms", std::string(speaker),
                 absl::ToInt64Milliseconds(duration));
  } else {
    spdlog::warn("speaker '{}' failed to load: {}", std::string(speaker),
                 std::string(status.message()));
  }
}

void RegistryRecorder::OnEvicted(absl::string_view speaker, int64_t bytes) {
  metrics_->RecordEviction();
  spdlog::info("speaker '{}' unloaded to make room under the memory budget ({} bytes)",
               std::string(speaker), bytes);
}

std::vector<prometheus::MetricFamily> SpeakerGauges::Collect() const {
  const RegistryUsage usage = registry_->Usage();
  prometheus::MetricFamily speakers = GaugeFamily("timbre_speakers", "Speakers by state");
  for (int state = 0; state < kSpeakerStateCount; ++state) {
    AddGaugeSample(speakers, usage.speakers[state],
                   {{"state", std::string(SpeakerStateName(static_cast<SpeakerState>(state)))}});
  }
  prometheus::MetricFamily memory = GaugeFamily(
      "timbre_index_memory_bytes",
      "Memory of the loaded speaker indexes, charged against the memory budget");
  AddGaugeSample(memory, static_cast<double>(usage.memory_bytes));
  prometheus::MetricFamily mapped = GaugeFamily(
      "timbre_index_mapped_bytes", "Index files memory-mapped by loaded speakers (not charged)");
  AddGaugeSample(mapped, static_cast<double>(usage.mapped_bytes));
  prometheus::MetricFamily budget = GaugeFamily(
      "timbre_index_memory_budget_bytes", "Memory budget of the loaded indexes; 0 = unlimited");
  AddGaugeSample(budget, static_cast<double>(usage.budget_bytes));
  prometheus::MetricFamily versions = GaugeFamily(
      "timbre_speaker_version",
      "Version serving each loaded speaker (its number; 0 for an RVC index file)");
  for (const SpeakerStatus& speaker : registry_->List()) {
    if (speaker.snapshot == nullptr) continue;
    int64_t number = 0;
    if (!absl::SimpleAtoi(speaker.snapshot->version, &number)) number = 0;
    AddGaugeSample(versions, static_cast<double>(number), {{"speaker", speaker.name}});
  }
  return {std::move(speakers), std::move(memory), std::move(mapped), std::move(budget),
          std::move(versions)};
}

}  // namespace timbre
