// timbre bench: drives the server as voice-changer clients do (load_generator.h) and reports
// throughput and latency percentiles.
#include <cstdio>
#include <cstring>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/cli_flags.h"
#include "client/cli/command.h"
#include "client/cli/command_status.h"
#include "client/cli/frame_flags.h"
#include "client/cli/load_generator.h"
#include "server/io/npy_file.h"

namespace timbre {
namespace {

// --queries into `options`. Errors (usage errors): an unreadable file, or not float32 [n, dim].
absl::Status ReadQueries(LoadOptions& options) {
  const std::string path = absl::GetFlag(FLAGS_queries);
  if (path.empty()) return absl::OkStatus();
  absl::StatusOr<NpyArray> queries = ReadNpy(path);
  if (!queries.ok()) return queries.status();
  if (queries->descr != "<f4" || queries->shape.size() != 2) {
    return absl::InvalidArgumentError("--queries must be float32 [n, dim]");
  }
  options.query_rows = queries->shape[0];
  options.queries.resize(queries->data.size() / sizeof(float));
  std::memcpy(options.queries.data(), queries->data.data(), queries->data.size());
  return absl::OkStatus();
}

int RunBench(const CommandContext& context) {
  LoadOptions options;
  options.speaker = absl::GetFlag(FLAGS_speaker);
  options.concurrency = absl::GetFlag(FLAGS_concurrency);
  options.frames = absl::GetFlag(FLAGS_frames);
  options.rate = absl::GetFlag(FLAGS_rate);
  options.duration = absl::GetFlag(FLAGS_duration);
  options.warmup = absl::GetFlag(FLAGS_warmup);
  options.options = RetrievalOptionsFromFlags();
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode != "unary" && mode != "stream") {
    return Fail(kExitUsage, absl::InvalidArgumentError(
                                absl::StrCat("--mode is '", mode, "'; use unary or stream")));
  }
  options.streaming = mode == "stream";
  if (absl::Status read = ReadQueries(options); !read.ok()) return Fail(kExitUsage, read);
  absl::StatusOr<LoadReport> report = RunLoad(context.client, options);
  if (!report.ok()) {
    return Fail(report.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage
                                                                              : kExitFailed,
                report.status());
  }
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s\n", report->ToJson().c_str());
  } else {
    std::printf("%s %s, %d callers x %d frames/call%s\n%s", options.speaker.c_str(), mode.c_str(),
                options.concurrency, options.frames,
                options.rate > 0 ? absl::StrFormat(" at %.1f calls/s each", options.rate).c_str()
                                 : ", back to back",
                report->ToText().c_str());
  }
  return report->errors > 0 ? kExitFailed : 0;
}

}  // namespace

extern const Command kBenchCommand = {
    "bench",
    "load-test the server as voice-changer clients do; report throughput and latency",
    "timbre bench --speaker=NAME[,NAME...] [--concurrency=N --frames=N --rate=R --duration=D "
    "--warmup=D --mode=unary|stream --queries=Q.npy --json]",
    {"speaker", "concurrency", "frames", "rate", "duration", "warmup", "mode", "queries", "json",
     "k", "index_rate", "nprobe", "k_factor"},
    {"speaker"},
    {"timbre bench --speaker=alice --concurrency=8 --mode=stream --duration=10s",
     "timbre bench --speaker=alice,bob --rate=50 --duration=1m --json   # 50 calls/s per caller"},
    RunBench};

}  // namespace timbre
