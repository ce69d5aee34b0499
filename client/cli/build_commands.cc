#include "client/cli/build_commands.h"

#include <unistd.h>

#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/cli/command_status.h"

namespace timbre {
namespace {

using timbre::v1::BuildJob;

constexpr int kBarWidth = 30;

std::string Bar(double fraction) {
  const int filled = static_cast<int>(fraction * kBarWidth + 0.5);
  return absl::StrCat("[", std::string(filled, '#'), std::string(kBarWidth - filled, '.'), "]");
}

// Redraws one status line on stderr.
void StatusLine(const std::string& line) {
  std::fprintf(stderr, "\r%-100.100s", line.c_str());
  std::fflush(stderr);
}

std::string StateName(BuildJob::State state) {
  switch (state) {
    case BuildJob::STATE_QUEUED: return "queued";
    case BuildJob::STATE_RUNNING: return "running";
    case BuildJob::STATE_SUCCEEDED: return "succeeded";
    case BuildJob::STATE_FAILED: return "failed";
    case BuildJob::STATE_CANCELLED: return "cancelled";
    default: return "unknown";
  }
}

void PrintFeatureSet(const v1::FeatureSet& set) {
  std::printf("feature set %s: %llu rows of dim %u in %d files (%.1f MB) from %s\n",
              set.id().c_str(), static_cast<unsigned long long>(set.rows()), set.dim(),
              set.files_size(), set.bytes() / 1e6, set.source().c_str());
  for (const v1::FeatureFile& file : set.files()) {
    std::printf("  %-40s %8llu rows  %s  sha256 %s\n", file.name().c_str(),
                static_cast<unsigned long long>(file.rows()), file.dtype().c_str(),
                file.sha256().c_str());
  }
}

// Follows `id` live on stderr and prints the final report; exit code by the final state.
int Follow(const BuilderClient& client, const std::string& id, BuildJob* finished = nullptr) {
  auto last = client.WatchJob(id, [](const BuildJob& job) {
    StatusLine(absl::StrFormat("%s %3.0f%% %-11s %s", Bar(job.fraction()), job.fraction() * 100,
                               job.stage(), job.message()));
  });
  std::fprintf(stderr, "\n");
  if (!last.ok()) return Fail(kExitFailed, last.status());
  std::printf("%s", ReportText(*last).c_str());
  if (finished != nullptr) *finished = *last;
  return last->state() == BuildJob::STATE_SUCCEEDED ? 0 : kExitFailed;
}

}  // namespace

timbre::v1::Recipe RecipeNamed(const std::string& name) {
  v1::Recipe recipe;
  if (name == "rvc") {
    recipe.set_kind(v1::Recipe::KIND_RVC);
  } else if (name == "fastscan") {
    recipe.set_kind(v1::Recipe::KIND_FASTSCAN);
  } else if (name == "auto") {
    recipe.set_kind(v1::Recipe::KIND_AUTO);
  } else {
    recipe.set_kind(v1::Recipe::KIND_FACTORY);
    recipe.set_factory(name);
  }
  return recipe;
}

std::string ReportText(const BuildJob& job) {
  const v1::BuildReport& report = job.report();
  std::string text = absl::StrFormat("job %s: %s, speaker '%s'", job.id(), StateName(job.state()),
                                     job.speaker());
  if (!report.version().empty()) absl::StrAppend(&text, ", version ", report.version());
  absl::StrAppend(&text, "\n");
  if (!job.error().empty()) absl::StrAppend(&text, "  error: ", job.error(), "\n");
  if (report.input_rows() > 0) {
    absl::StrAppendFormat(&text, "  rows: %d read, %d indexed%s; dim %d; shuffle seed %d\n",
                          report.input_rows(), report.indexed_rows(),
                          report.compressed() ? " (k-means compressed)" : "", report.dim(),
                          report.shuffle_seed());
  }
  if (!report.description().empty()) {
    absl::StrAppendFormat(&text, "  index: %s, %s, nprobe %d, k_factor %d\n", report.description(),
                          report.inner_product() ? "inner product" : "L2", report.nprobe(),
                          report.k_factor());
  }
  for (const v1::StageTime& stage : report.stage_times()) {
    absl::StrAppendFormat(&text, "  %-12s %8.2f s\n", stage.stage(), stage.seconds());
  }
  if (report.candidates_size() > 0) {
    // Servers before the field reported no reference: 0.
    const std::string reference =
        report.rvc_unpruned_p50_call_ms() > 0
            ? absl::StrFormat("; RVC's recipe without the pruned steps: p50 %.3f ms",
                              report.rvc_unpruned_p50_call_ms())
            : "";
    absl::StrAppendFormat(&text,
                          "  candidates (target: mean blend cosine >= %.4f, p50 <= %.3f ms%s):\n",
                          report.min_blend_cosine(), report.max_call_ms(), reference);
    absl::StrAppendFormat(&text, "    %-30s %6s %8s %9s %12s %8s %8s %8s %9s %9s\n", "INDEX",
                          "NPROBE", "K_FACTOR", "RECALL@K", "BLEND_COS", "P50_MS", "P99_MS",
                          "BUILD_S", "MEMORY_MB", "IMBALANCE");
    for (int i = 0; i < report.candidates_size(); ++i) {
      const v1::IndexEvaluation& c = report.candidates(i);
      absl::StrAppendFormat(
          &text, "  %s %-30s %6d %8d %9.4f %12.6f %8.3f %8.3f %8.1f %9.1f %9.2f\n",
          i == report.chosen_candidate() ? "*" : " ", c.description(), c.nprobe(), c.k_factor(),
          c.recall_at_k(), c.mean_blend_cosine(), c.p50_call_ms(), c.p99_call_ms(),
          c.build_seconds(), c.memory_bytes() / 1048576.0, c.list_imbalance());
    }
  }
  for (const std::string& note : report.notes()) absl::StrAppend(&text, "  note: ", note, "\n");
  return text;
}

int UploadCommand(const BuilderClient& client, const std::string& path, int64_t chunk_bytes) {
  auto set = client.Upload(path, chunk_bytes, [](int64_t sent, int64_t total) {
    const double fraction = total > 0 ? static_cast<double>(sent) / total : 1.0;
    StatusLine(absl::StrFormat("%s %3.0f%% %.1f of %.1f MB", Bar(fraction), fraction * 100,
                               sent / 1e6, total / 1e6));
  });
  std::fprintf(stderr, "\n");
  if (!set.ok()) {
    const bool local = set.status().code() == absl::StatusCode::kNotFound &&
                       absl::StrContains(set.status().message(), path);
    return Fail(local ? kExitUsage : kExitFailed, set.status());
  }
  PrintFeatureSet(*set);
  return 0;
}

int ImportCommand(const BuilderClient& client, const std::string& server_path) {
  auto set = client.Import(server_path);
  if (!set.ok()) return Fail(kExitFailed, set.status());
  PrintFeatureSet(*set);
  return 0;
}

int FeatureSetsCommand(const BuilderClient& client) {
  auto sets = client.ListFeatureSets();
  if (!sets.ok()) return Fail(kExitFailed, sets.status());
  for (const v1::FeatureSet& set : sets->feature_sets()) PrintFeatureSet(set);
  return 0;
}

int BuildCommand(const BuilderClient& client, const v1::BuildIndexRequest& request, bool detach,
                 const VersionWaitOptions* wait) {
  auto job = client.Build(request);
  if (!job.ok()) return Fail(kExitFailed, job.status());
  std::printf("build job %s started for speaker '%s'\n", job->id().c_str(),
              job->speaker().c_str());
  std::fflush(stdout);
  if (detach) return 0;
  BuildJob finished;
  const int code = Follow(client, job->id(), &finished);
  const std::string& version = finished.report().version();
  if (code != 0 || wait == nullptr || version.empty()) return code;
  std::printf("waiting until every replica that holds speaker '%s' serves version %s\n",
              request.speaker().c_str(), version.c_str());
  std::fflush(stdout);
  const absl::Time wait_start = absl::Now();
  auto lines = WaitForServingVersion(*wait, request.speaker(), version);
  if (!lines.ok()) return Fail(kExitFailed, lines.status());
  std::printf("version %s of speaker '%s' serves on every replica that holds it, %.2f s after "
              "the build finished:\n  %s\n",
              version.c_str(), request.speaker().c_str(),
              absl::ToDoubleSeconds(absl::Now() - wait_start), absl::StrJoin(*lines, "\n  ").c_str());
  return 0;
}

int JobsCommand(const BuilderClient& client) {
  auto jobs = client.ListJobs();
  if (!jobs.ok()) return Fail(kExitFailed, jobs.status());
  std::printf("%-17s %-20s %-10s %-12s %5s %-8s %s\n", "JOB", "SPEAKER", "STATE", "STAGE", "DONE",
              "VERSION", "ERROR");
  for (const BuildJob& job : jobs->jobs()) {
    std::printf("%-17s %-20s %-10s %-12s %4.0f%% %-8s %s\n", job.id().c_str(),
                job.speaker().c_str(), StateName(job.state()).c_str(), job.stage().c_str(),
                job.fraction() * 100, job.report().version().c_str(), job.error().c_str());
  }
  return 0;
}

int JobCommand(const BuilderClient& client, const std::string& id, bool watch) {
  if (watch) return Follow(client, id);
  auto job = client.GetJob(id);
  if (!job.ok()) return Fail(kExitFailed, job.status());
  std::printf("%s", ReportText(*job).c_str());
  return 0;
}

int CancelCommand(const BuilderClient& client, const std::string& id) {
  auto job = client.CancelJob(id);
  if (!job.ok()) return Fail(kExitFailed, job.status());
  std::printf("job %s: %s (%s)\n", job->id().c_str(), StateName(job->state()).c_str(),
              job->state() == BuildJob::STATE_RUNNING ? "stops at its next check" : "done");
  return 0;
}

}  // namespace timbre
