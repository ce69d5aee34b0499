// timbre-server: maps flags to TimbreServer::Options and runs until SIGINT or SIGTERM.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "server/service/timbre_server.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, repo, "", "Speaker repository directory (required)");
ABSL_FLAG(bool, demo_if_empty, false,
          "Create a demo speaker from generated frames when the repository has none");
ABSL_FLAG(std::string, host, "0.0.0.0", "gRPC listening address");
ABSL_FLAG(int, port, 50051, "gRPC port; 0 picks a free one");
ABSL_FLAG(std::string, metrics_host, "0.0.0.0", "Prometheus endpoint address");
ABSL_FLAG(int, metrics_port, 9464, "Prometheus /metrics port; 0 picks a free one, -1 disables");
ABSL_FLAG(int, search_threads, 0, "Search worker threads; 0 = one per core");
ABSL_FLAG(int64_t, max_batch_frames, 512, "Most frames merged into one search batch");
ABSL_FLAG(int64_t, max_frames_per_call, 4096, "Most frames accepted in one call");
ABSL_FLAG(absl::Duration, poll_interval, absl::Seconds(2),
          "How often the repository is rescanned for new versions; 0 disables");
ABSL_FLAG(int, max_message_bytes, 64 << 20, "Largest gRPC message accepted or sent");
ABSL_FLAG(int64_t, memory_budget_bytes, 0,
          "Most bytes of index memory loaded at once; the least recently used speakers are "
          "unloaded to make room. 0 = unlimited");
ABSL_FLAG(bool, mmap_indexes, false,
          "Memory-map the inverted lists of IVF indexes instead of reading them into memory");
ABSL_FLAG(bool, warmup_on_load, false,
          "Search generated frames through every newly loaded index before it serves");
ABSL_FLAG(bool, per_speaker_metrics, false,
          "Label call latency and frame metrics with the speaker too");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(5),
          "How long calls in flight may take to finish on SIGTERM");
ABSL_FLAG(std::string, log_level, "info", "spdlog level: trace, debug, info, warn, error");

namespace {

// OpenBLAS 0.3.21 (bookworm) does not recognise AMD Zen 4 and runs its Haswell kernels there,
// although the CPU has AVX-512; its SkylakeX sgemm kernel makes timbre's coarse step 1.6x faster
// on such a machine. The core type is read once, when OpenBLAS loads, so it is set here and the
// process re-executed. An operator's own OPENBLAS_CORETYPE is left alone.
void PreferAvx512Blas(char** argv) {
  if (getenv("OPENBLAS_CORETYPE") != nullptr) return;
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
      !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl")) {
    return;
  }
  setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: keep running as we are
}

}  // namespace

int main(int argc, char** argv) {
  PreferAvx512Blas(argv);
  absl::SetProgramUsageMessage("Serves RVC speaker indexes over gRPC.\n  timbre-server --repo=DIR");
  absl::ParseCommandLine(argc, argv);
  spdlog::set_level(spdlog::level::from_str(absl::GetFlag(FLAGS_log_level)));

  // Signals are taken by one thread with sigwait; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  timbre::TimbreServer::Options options;
  options.repo = absl::GetFlag(FLAGS_repo);
  options.demo_if_empty = absl::GetFlag(FLAGS_demo_if_empty);
  options.host = absl::GetFlag(FLAGS_host);
  options.port = absl::GetFlag(FLAGS_port);
  options.metrics_host = absl::GetFlag(FLAGS_metrics_host);
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.search_threads = absl::GetFlag(FLAGS_search_threads);
  options.max_batch_frames = absl::GetFlag(FLAGS_max_batch_frames);
  options.max_frames_per_call = absl::GetFlag(FLAGS_max_frames_per_call);
  options.poll_interval = absl::GetFlag(FLAGS_poll_interval);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options.memory_budget_bytes = absl::GetFlag(FLAGS_memory_budget_bytes);
  options.mmap_indexes = absl::GetFlag(FLAGS_mmap_indexes);
  options.warmup_on_load = absl::GetFlag(FLAGS_warmup_on_load);
  options.per_speaker_metrics = absl::GetFlag(FLAGS_per_speaker_metrics);
  auto server = timbre::TimbreServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "timbre-server: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::thread waiter([&signals, &server] {
    int signal = 0;
    sigwait(&signals, &signal);
    spdlog::info("signal {}: shutting down", signal);
    (*server)->Shutdown(absl::GetFlag(FLAGS_shutdown_grace));
  });
  (*server)->Wait();
  waiter.join();
  server->reset();
  spdlog::info("timbre-server stopped");
  return 0;
}
