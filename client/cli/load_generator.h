// LoadGenerator: drives a timbre server the way voice-changer clients do and reports throughput
// and latency percentiles, as ghz or Triton's perf_analyzer do.
//
// `concurrency` callers each send blocks of `frames` frames, unary (Blend) or over one BlendStream
// per caller, either at `rate` calls per second per caller or back to back, for `duration` after
// a `warmup` whose calls are not counted. Queries come from a [n, dim] float32 matrix (for
// example held-out frames of the speaker), taken block by block, or are drawn from N(0, 1).
//
// Thread-safe: RunLoad may be called concurrently.
#ifndef TIMBRE_CLIENT_CLI_LOAD_GENERATOR_H_
#define TIMBRE_CLIENT_CLI_LOAD_GENERATOR_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "timbre/timbre_client.h"

namespace timbre {

// The time source of a load run: when each call is due and how long it took. Implementations
// must be thread-safe (every caller thread uses it).
class LoadClock {
 public:
  virtual ~LoadClock() = default;
  virtual absl::Time Now() = 0;
  // Returns at `time`, or at once if it has passed.
  virtual void SleepUntil(absl::Time time) = 0;
  // The system clock (absl::Now, absl::SleepFor); lives as long as the process.
  static LoadClock* System();
};

struct LoadOptions {
  // Required. A comma-separated list spreads the callers over the speakers: caller c calls the
  // (c mod n)-th. Speakers not loaded yet need `queries` (their dim is unknown until loaded).
  std::string speaker;
  int concurrency = 4;                  // callers, >= 1
  int frames = 16;                      // frames per call, >= 1 (RVC's real-time default: 16)
  double rate = 0;                      // calls per second per caller; 0 = back to back
  absl::Duration duration = absl::Seconds(10);
  absl::Duration warmup = absl::Seconds(1);
  bool streaming = false;               // BlendStream instead of unary Blend
  timbre::v1::RetrievalOptions options; // k, index_rate, nprobe of every call
  // Query frames, row-major [query_rows, dim] float32; empty = N(0, 1) values of the speaker's dim.
  std::vector<float> queries;
  int64_t query_rows = 0;
  // Schedules the calls and times them. Not owned, must outlive RunLoad; required. Default: the
  // system clock. With a rate, caller c of n calls at start + interval * (c / n + i) for
  // i = 0, 1, ... while that is before start + warmup + duration (interval = 1 / rate; calls
  // before start + warmup are not counted), where start is the clock's time when RunLoad starts
  // the callers.
  LoadClock* clock = LoadClock::System();
};

struct LoadReport {
  int64_t calls = 0;   // successful calls in the measured window
  int64_t errors = 0;  // failed calls in the measured window
  int64_t frames = 0;  // frames of the successful calls
  double seconds = 0;  // measured window
  // Streams reopened after they ended with UNAVAILABLE, and the successful calls among `calls`
  // answered only on a reopened stream. Unary calls retried by gRPC's retry policy are not
  // visible to the caller and count as plain successes.
  int64_t reopens = 0;
  int64_t calls_after_reopen = 0;
  std::string first_error;
  // The failed calls by status code name ("RESOURCE_EXHAUSTED"), in name order.
  std::map<std::string, int64_t> errors_by_code;
  // Sorted latencies in microseconds of the successful calls: end to end as the caller saw
  // it, and inside the server (queue + search + blend, from ServerTiming).
  std::vector<double> latency_us;
  std::vector<double> server_us;

  double calls_per_second() const { return seconds > 0 ? calls / seconds : 0; }
  double frames_per_second() const { return seconds > 0 ? frames / seconds : 0; }
  // The p-th percentile (0..100) of sorted `values`, 0 when empty.
  static double Percentile(const std::vector<double>& values, double p);
  // A human-readable summary, and the same figures as one JSON object.
  std::string ToText() const;
  std::string ToJson() const;
};

// Errors: INVALID_ARGUMENT for bad options (naming the flag of `timbre bench`, or the clock);
// the server's error if the speaker cannot be read. Call errors during the run are counted, not
// returned.
absl::StatusOr<LoadReport> RunLoad(const TimbreClient& client, const LoadOptions& options);

}  // namespace timbre

#endif  // TIMBRE_CLIENT_CLI_LOAD_GENERATOR_H_
