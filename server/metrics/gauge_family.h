// Gauge families as Prometheus collectables build them at scrape time (SpeakerGauges,
// BuildJobGauges): one family, then one sample per label set.
//
// Thread-compatible: free functions on values the caller owns.
#ifndef TIMBRE_SERVER_METRICS_GAUGE_FAMILY_H_
#define TIMBRE_SERVER_METRICS_GAUGE_FAMILY_H_

#include <string>
#include <vector>

#include "prometheus/metric_family.h"

namespace timbre {

// An empty gauge family named `name` (a Prometheus metric name) with `help`.
prometheus::MetricFamily GaugeFamily(std::string name, std::string help);

// Appends a sample of `value` with `labels` (none: the family's only sample) to `family`.
void AddGaugeSample(prometheus::MetricFamily& family, double value,
                    std::vector<prometheus::ClientMetric::Label> labels = {});

}  // namespace timbre

#endif  // TIMBRE_SERVER_METRICS_GAUGE_FAMILY_H_
