#include "client/cli/load_generator.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace timbre {
namespace {

struct CallerResult {
  int64_t calls = 0;
  int64_t calls_after_reopen = 0;
  int64_t reopens = 0;
  int64_t errors = 0;
  int64_t frames = 0;
  std::string first_error;
  std::map<std::string, int64_t> errors_by_code;
  std::vector<double> latency_us;
  std::vector<double> server_us;
};

// `text` as the inside of a JSON string.
std::string JsonEscaped(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(static_cast<unsigned char>(c) < 0x20 ? ' ' : c);
  }
  return out;
}

double ServerMicros(const timbre::v1::ServerTiming& timing) {
  return static_cast<double>(timing.queue_us()) + timing.search_us() + timing.blend_us();
}

// The block of frames the caller sends as its `n`-th call.
std::string Block(const LoadOptions& options, const std::vector<float>& pool, int64_t pool_rows,
                  int dim, int caller, int64_t n) {
  const int64_t start = ((caller * 7919 + n) * options.frames) % pool_rows;
  std::string data(static_cast<size_t>(options.frames) * dim * sizeof(float), '\0');
  for (int f = 0; f < options.frames; ++f) {
    const int64_t row = (start + f) % pool_rows;
    std::memcpy(data.data() + static_cast<size_t>(f) * dim * sizeof(float),
                pool.data() + row * dim, dim * sizeof(float));
  }
  return data;
}

class SystemLoadClock final : public LoadClock {
 public:
  absl::Time Now() override { return absl::Now(); }
  void SleepUntil(absl::Time time) override {
    const absl::Duration left = time - absl::Now();
    if (left > absl::ZeroDuration()) absl::SleepFor(left);
  }
};

void RunCaller(const TimbreClient& client, const LoadOptions& options,
               const std::string& speaker, const std::vector<float>& pool, int64_t pool_rows,
               int dim, int caller, absl::Time begin, absl::Time measure_from, absl::Time stop,
               CallerResult* result) {
  std::unique_ptr<BlendSession> session;
  if (options.streaming) session = client.OpenSession(speaker, options.options);
  const absl::Duration interval =
      options.rate > 0 ? absl::Seconds(1.0 / options.rate) : absl::ZeroDuration();
  LoadClock& clock = *options.clock;
  // Callers start spread over one interval, as independent clients would, not in lockstep.
  absl::Time next = begin + interval * caller / options.concurrency;
  for (int64_t n = 0;; ++n) {
    if (interval > absl::ZeroDuration()) {
      clock.SleepUntil(next);
      next += interval;
    }
    const absl::Time start = clock.Now();
    if (start >= stop) break;
    timbre::v1::Frames frames =
        MakeFrames(timbre::v1::DTYPE_FLOAT32, options.frames, dim,
                   Block(options, pool, pool_rows, dim, caller, n));
    absl::Status status;
    double server = 0;
    bool after_reopen = false;
    if (session != nullptr) {
      const int64_t reopened_before = session->blocks_after_reopen();
      const int64_t reopens_before = session->reopens();
      auto response = session->Send(frames);
      status = response.status();
      if (response.ok()) server = ServerMicros(response->timing());
      after_reopen = session->blocks_after_reopen() > reopened_before;
      if (start >= measure_from) result->reopens += session->reopens() - reopens_before;
    } else {
      timbre::v1::BlendRequest request;
      request.set_speaker(speaker);
      *request.mutable_frames() = std::move(frames);
      *request.mutable_options() = options.options;
      auto response = client.Blend(request);
      status = response.status();
      if (response.ok()) server = ServerMicros(response->timing());
    }
    const absl::Time end = clock.Now();
    if (start < measure_from) continue;
    if (status.ok()) {
      ++result->calls;
      if (after_reopen) ++result->calls_after_reopen;
      result->frames += options.frames;
      result->latency_us.push_back(absl::ToDoubleMicroseconds(end - start));
      result->server_us.push_back(server);
    } else {
      ++result->errors;
      ++result->errors_by_code[absl::StatusCodeToString(status.code())];
      if (result->first_error.empty()) result->first_error = status.ToString();
      if (session != nullptr) session = client.OpenSession(speaker, options.options);
    }
  }
  if (session != nullptr) session->Close().IgnoreError();
}

}  // namespace

LoadClock* LoadClock::System() {
  static SystemLoadClock* const clock = new SystemLoadClock();
  return clock;
}

double LoadReport::Percentile(const std::vector<double>& values, double p) {
  if (values.empty()) return 0;
  const double rank = p / 100.0 * static_cast<double>(values.size() - 1);
  const size_t low = static_cast<size_t>(std::floor(rank));
  const size_t high = std::min(values.size() - 1, low + 1);
  return values[low] + (values[high] - values[low]) * (rank - static_cast<double>(low));
}

std::string LoadReport::ToText() const {
  std::string text = absl::StrFormat(
      "calls:        %d ok, %d errors in %.1f s\n"
      "throughput:   %.1f calls/s, %.0f frames/s\n"
      "latency (ms): p50 %.3f  p90 %.3f  p99 %.3f  max %.3f   (end to end)\n"
      "server (ms):  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f   (queue + search + blend)\n"
      "reopened:     %d streams, %d calls answered only after a reopen\n",
      calls, errors, seconds, calls_per_second(), frames_per_second(),
      Percentile(latency_us, 50) / 1e3, Percentile(latency_us, 90) / 1e3,
      Percentile(latency_us, 99) / 1e3, Percentile(latency_us, 100) / 1e3,
      Percentile(server_us, 50) / 1e3, Percentile(server_us, 90) / 1e3,
      Percentile(server_us, 99) / 1e3, Percentile(server_us, 100) / 1e3, reopens,
      calls_after_reopen);
  if (!errors_by_code.empty()) {
    absl::StrAppend(&text, "errors:       ",
                    absl::StrJoin(errors_by_code, ", ", absl::PairFormatter(" ")), "\n");
  }
  if (!first_error.empty()) absl::StrAppend(&text, "first error:  ", first_error, "\n");
  return text;
}

std::string LoadReport::ToJson() const {
  return absl::StrFormat(
      "{\"calls\": %d, \"errors\": %d, \"seconds\": %.3f, \"calls_per_second\": %.2f, "
      "\"frames_per_second\": %.1f, \"p50_ms\": %.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f, "
      "\"max_ms\": %.4f, \"server_p50_ms\": %.4f, \"server_p90_ms\": %.4f, "
      "\"server_p99_ms\": %.4f, \"reopens\": %d, \"calls_after_reopen\": %d, "
      "\"errors_by_code\": {%s}, \"first_error\": \"%s\"}",
      calls, errors, seconds, calls_per_second(), frames_per_second(),
      Percentile(latency_us, 50) / 1e3, Percentile(latency_us, 90) / 1e3,
      Percentile(latency_us, 99) / 1e3, Percentile(latency_us, 100) / 1e3,
      Percentile(server_us, 50) / 1e3, Percentile(server_us, 90) / 1e3,
      Percentile(server_us, 99) / 1e3, reopens, calls_after_reopen,
      absl::StrJoin(errors_by_code, ", ", [](std::string* out, const auto& code_count) {
        absl::StrAppend(out, "\"", code_count.first, "\": ", code_count.second);
      }),
      JsonEscaped(first_error));
}

absl::StatusOr<LoadReport> RunLoad(const TimbreClient& client, const LoadOptions& options) {
  if (options.speaker.empty()) return absl::InvalidArgumentError("--speaker is required");
  if (options.concurrency < 1) return absl::InvalidArgumentError("--concurrency must be >= 1");
  if (options.frames < 1) return absl::InvalidArgumentError("--frames must be >= 1");
  if (options.rate < 0) return absl::InvalidArgumentError("--rate must be >= 0");
  if (options.duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--duration must be positive");
  }
  if (options.clock == nullptr) return absl::InvalidArgumentError("the load clock is null");
  const std::vector<std::string> speakers = absl::StrSplit(options.speaker, ',');
  int dim = 0;
  for (const std::string& name : speakers) {
    absl::StatusOr<timbre::v1::SpeakerInfo> speaker = client.GetSpeaker(name);
    if (!speaker.ok()) return speaker.status();
    int speaker_dim = static_cast<int>(speaker->dim());
    if (speaker_dim < 1 && options.query_rows > 0 && speaker->error().empty()) {
      // Not loaded yet (it loads on its first call): the query frames give the dim.
      speaker_dim = static_cast<int>(options.queries.size() / options.query_rows);
    }
    if (speaker_dim < 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          "speaker '", name, "' is not loaded", speaker->error().empty() ? "" : ": ",
          speaker->error(), "; give query frames (--queries) to call it anyway"));
    }
    if (dim != 0 && speaker_dim != dim) {
      return absl::InvalidArgumentError(absl::StrCat("speaker '", name, "' has dim ", speaker_dim,
                                                     ", the first speaker ", dim));
    }
    dim = speaker_dim;
  }
  std::vector<float> pool = options.queries;
  int64_t pool_rows = options.query_rows;
  if (pool_rows > 0 && static_cast<int64_t>(pool.size()) != pool_rows * dim) {
    return absl::InvalidArgumentError(absl::StrCat("query frames do not have the speaker's dim ", dim));
  }
  if (pool_rows == 0) {
    pool_rows = 4096;
    pool.resize(static_cast<size_t>(pool_rows) * dim);
    std::mt19937 random(1);
    std::normal_distribution<float> normal;
    for (float& value : pool) value = normal(random);
  }
  const absl::Time begin = options.clock->Now();
  const absl::Time measure_from = begin + options.warmup;
  const absl::Time stop = measure_from + options.duration;
  std::vector<CallerResult> results(options.concurrency);
  std::vector<std::thread> callers;
  for (int c = 0; c < options.concurrency; ++c) {
    callers.emplace_back(RunCaller, std::cref(client), std::cref(options),
                         std::cref(speakers[c % speakers.size()]), std::cref(pool), pool_rows, dim,
                         c, begin, measure_from, stop, &results[c]);
  }
  for (std::thread& caller : callers) caller.join();
  LoadReport report;
  report.seconds =
      absl::ToDoubleSeconds(std::max(options.clock->Now(), stop) - measure_from);
  for (CallerResult& result : results) {
    report.calls += result.calls;
    report.calls_after_reopen += result.calls_after_reopen;
    report.reopens += result.reopens;
    report.errors += result.errors;
    report.frames += result.frames;
    if (report.first_error.empty()) report.first_error = result.first_error;
    for (const auto& [code, count] : result.errors_by_code) report.errors_by_code[code] += count;
    report.latency_us.insert(report.latency_us.end(), result.latency_us.begin(),
                             result.latency_us.end());
    report.server_us.insert(report.server_us.end(), result.server_us.begin(),
                            result.server_us.end());
  }
  std::sort(report.latency_us.begin(), report.latency_us.end());
  std::sort(report.server_us.begin(), report.server_us.end());
  return report;
}

}  // namespace timbre
