// timbre-server: maps flags to TimbreServer::Options and runs until SIGINT or SIGTERM, which
// drain the server (SIGTERM waits --drain_grace for load balancers first) and exit 0; a second
// signal ends it at once.
#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "server/timbre_server.h"
#include "spdlog/spdlog.h"

// Every default comes from the Options structs (TimbreServer::Options, ConnectionOptions,
// SecurityOptions), where each is documented; the flags below only name and describe them.
namespace {
const timbre::TimbreServer::Options kServerDefaults;
const timbre::ConnectionOptions kConnectionDefaults;
const timbre::SecurityOptions kSecurityDefaults;
}  // namespace

ABSL_FLAG(std::string, repo, kServerDefaults.repo, "Speaker repository directory (required)");
ABSL_FLAG(bool, demo_if_empty, kServerDefaults.demo_if_empty,
          "Create a demo speaker from generated frames when the repository has none");
ABSL_FLAG(std::string, host, kServerDefaults.host, "gRPC listening address");
ABSL_FLAG(int, port, kServerDefaults.port, "gRPC port; 0 picks a free one");
ABSL_FLAG(std::string, metrics_host, kServerDefaults.metrics_host, "Prometheus endpoint address");
ABSL_FLAG(int, metrics_port, kServerDefaults.metrics_port,
          "Prometheus /metrics port; 0 picks a free one, -1 disables");
ABSL_FLAG(int, search_threads, kServerDefaults.search_threads,
          "Search worker threads; 0 = one per core");
ABSL_FLAG(bool, batch_scheduling, kServerDefaults.batch_scheduling,
          "Run the server's threads under Linux's SCHED_BATCH policy (woken threads wait for a "
          "busy core's time slice instead of preempting it)");
ABSL_FLAG(bool, split_idle_searches, kServerDefaults.split_idle_searches,
          "Split a lone call's search across the idle search workers");
ABSL_FLAG(absl::Duration, search_idle_spin, kServerDefaults.search_idle_spin,
          "How long a search worker polls for the next call before it sleeps; 0 = sleep at once");
ABSL_FLAG(int64_t, max_batch_frames, kServerDefaults.max_batch_frames,
          "Most frames merged into one search batch");
ABSL_FLAG(int64_t, max_frames_per_call, kServerDefaults.max_frames_per_call,
          "Most frames accepted in one call");
ABSL_FLAG(absl::Duration, poll_interval, kServerDefaults.poll_interval,
          "How often the repository is rescanned for new versions; 0 disables");
ABSL_FLAG(int, max_receive_message_bytes, kConnectionDefaults.max_receive_message_bytes,
          "Largest request message accepted, bytes");
ABSL_FLAG(int, max_send_message_bytes, kConnectionDefaults.max_send_message_bytes,
          "Largest response message sent, bytes");
ABSL_FLAG(absl::Duration, keepalive_time, kConnectionDefaults.keepalive_time,
          "How often the server pings each client connection; inf disables");
ABSL_FLAG(absl::Duration, keepalive_timeout, kConnectionDefaults.keepalive_timeout,
          "How long a keepalive ping may go unanswered before the connection is closed");
ABSL_FLAG(absl::Duration, max_connection_age, kConnectionDefaults.max_connection_age,
          "Age after which a client is asked to reconnect (rebalancing behind an L7 load "
          "balancer); inf = never");
ABSL_FLAG(absl::Duration, max_connection_age_grace, kConnectionDefaults.max_connection_age_grace,
          "How long calls in flight may continue on a connection past its age; inf = until "
          "they end");
ABSL_FLAG(int, max_concurrent_streams, kConnectionDefaults.max_concurrent_streams,
          "Most calls open at once on one client connection; the client queues the rest");
ABSL_FLAG(absl::Duration, max_connection_idle, kConnectionDefaults.max_connection_idle,
          "A connection without a call for this long is closed (the client reconnects on its "
          "next call); inf = never");
ABSL_FLAG(int, max_metadata_bytes, kConnectionDefaults.max_metadata_bytes,
          "Largest request metadata (headers) accepted, bytes");
ABSL_FLAG(absl::Duration, upload_stall_timeout, kServerDefaults.upload_stall_timeout,
          "An upload that sends no complete message for this long is ended and stores nothing");
ABSL_FLAG(std::string, work_dir, kServerDefaults.work_dir,
          "Where uploaded feature sets and build job records are kept; default <repo>/.timbre");
ABSL_FLAG(std::string, import_root, kServerDefaults.import_root,
          "Server directory that ImportFeatures may read feature files from; empty disables it");
ABSL_FLAG(int64_t, max_upload_bytes, kServerDefaults.max_upload_bytes,
          "Largest feature-set upload in bytes");
ABSL_FLAG(int, max_queued_builds, kServerDefaults.max_queued_builds,
          "Most build jobs waiting behind the running one");
ABSL_FLAG(int64_t, memory_budget_bytes, kServerDefaults.memory_budget_bytes,
          "Most bytes of index memory loaded at once; the least recently used speakers are "
          "unloaded to make room. 0 = unlimited");
ABSL_FLAG(bool, mmap_indexes, kServerDefaults.mmap_indexes,
          "Memory-map the inverted lists of IVF indexes instead of reading them into memory");
ABSL_FLAG(bool, exact_list_scan, kServerDefaults.exact_list_scan,
          "Scan IVF-Flat lists through 8-bit codes of every vector (faiss's result, faster; a "
          "quarter more memory per speaker); false leaves the scan to faiss");
ABSL_FLAG(bool, warmup_on_load, kServerDefaults.warmup_on_load,
          "Search generated frames through every newly loaded index before it serves");
ABSL_FLAG(std::string, role, std::string(timbre::ServerRoleName(kServerDefaults.role)),
          "all: serve speakers and builds; serving: timbre.v1.Timbre only; builder: "
          "timbre.v1.IndexBuilder only (a cluster's builds, off the real-time replicas)");
ABSL_FLAG(bool, lazy_load, kServerDefaults.lazy_load,
          "Load each speaker on its first call instead of at start; health turns SERVING once "
          "the repository is scanned");
ABSL_FLAG(bool, per_speaker_metrics, kServerDefaults.per_speaker_metrics,
          "Label call latency and frame metrics with the speaker too");
ABSL_FLAG(absl::Duration, shutdown_grace, timbre::TimbreServer::kDefaultShutdownGrace,
          "How long calls in flight may take to finish once the server stops taking calls");
ABSL_FLAG(absl::Duration, drain_grace, absl::Seconds(5),
          "On SIGTERM, how long health reports NOT_SERVING while the server still serves, so "
          "that load balancers stop routing to it");
ABSL_FLAG(int, max_queued_calls, kServerDefaults.max_queued_calls,
          "Most calls waiting for a search worker; more get RESOURCE_EXHAUSTED at once");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain of the server; enables TLS. Re-read every "
          "--credentials_reload_interval, as are --tls_key, --tls_client_ca and the token files");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA certificates; clients must present a certificate they signed (mTLS)");
ABSL_FLAG(std::string, token_file, "",
          "File of user bearer tokens, one per line (Blend, BlendStream, Search, ListSpeakers, "
          "GetSpeaker); needs TLS");
ABSL_FLAG(std::string, admin_token_file, "",
          "File of admin bearer tokens, one per line (every method); needs TLS");
ABSL_FLAG(absl::Duration, credentials_reload_interval, kSecurityDefaults.reload_interval,
          "How often the TLS and token files are read again: files that changed and pass the "
          "start-time checks replace those in use without a restart (new connections get the new "
          "certificate, later calls the new tokens); files that fail them are logged and the "
          "credentials in use stay. 0 = never");
ABSL_FLAG(std::string, log_level, "info",
          "spdlog level: trace, debug, info, warn, error, critical, off");

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

// glibc raises its mmap threshold (and twice that, its trim threshold) whenever a large mapped
// block is freed, up to 32 MB. The first build frees such blocks, so the search path's per-batch
// buffers (a few MB) moved from fresh mappings into the threads' arenas, which then kept them: the
// soak's RSS stepped up at each of the first builds (README, Hardening). Starting in that state
// keeps memory flat after the warm-up, and the buffers are reused rather than mapped and faulted
// in on every batch. Arenas are capped at twice the cores (glibc allows eight times) so that fewer
// of them each hold such buffers.
void FixAllocatorThresholds() {
  constexpr int kMmapThreshold = 32 << 20;
  mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
  mallopt(M_TRIM_THRESHOLD, 2 * kMmapThreshold);
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  mallopt(M_ARENA_MAX, std::max(4, 2 * cores));
}

timbre::ConnectionOptions ConnectionFlags() {
  timbre::ConnectionOptions connection;
  connection.max_receive_message_bytes = absl::GetFlag(FLAGS_max_receive_message_bytes);
  connection.max_send_message_bytes = absl::GetFlag(FLAGS_max_send_message_bytes);
  connection.keepalive_time = absl::GetFlag(FLAGS_keepalive_time);
  connection.keepalive_timeout = absl::GetFlag(FLAGS_keepalive_timeout);
  connection.max_connection_age = absl::GetFlag(FLAGS_max_connection_age);
  connection.max_connection_age_grace = absl::GetFlag(FLAGS_max_connection_age_grace);
  connection.max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  connection.max_connection_idle = absl::GetFlag(FLAGS_max_connection_idle);
  connection.max_metadata_bytes = absl::GetFlag(FLAGS_max_metadata_bytes);
  return connection;
}

timbre::SecurityOptions SecurityFlags() {
  timbre::SecurityOptions security;
  security.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  security.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  security.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  security.token_file = absl::GetFlag(FLAGS_token_file);
  security.admin_token_file = absl::GetFlag(FLAGS_admin_token_file);
  security.reload_interval = absl::GetFlag(FLAGS_credentials_reload_interval);
  return security;
}

// SIGINT and SIGTERM, delivered to whichever thread the kernel picks (OpenBLAS starts its threads
// before main, so blocking the signals in main cannot cover every thread), are passed through a
// pipe to the one thread that waits for them. One that comes while speakers are still loading
// waits in the pipe. A second signal ends the process at once, as if it were not caught.
int signal_pipe[2] = {-1, -1};
std::atomic<int> stop_signals{0};

extern "C" void OnStopSignal(int signal) {
  if (stop_signals.fetch_add(1) > 0) {
    std::signal(signal, SIG_DFL);
    std::raise(signal);  // delivered when the handler returns
    return;
  }
  const unsigned char byte = static_cast<unsigned char>(signal);
  [[maybe_unused]] ssize_t written = write(signal_pipe[1], &byte, 1);
}

bool CatchStopSignals() {
  if (pipe2(signal_pipe, O_CLOEXEC) != 0) return false;
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  return sigaction(SIGINT, &action, nullptr) == 0 && sigaction(SIGTERM, &action, nullptr) == 0;
}

// Blocks until SIGINT or SIGTERM arrives and returns it.
int WaitForStopSignal() {
  unsigned char byte = 0;
  while (read(signal_pipe[0], &byte, 1) != 1) {
    if (errno != EINTR) return SIGTERM;
  }
  return byte;
}

}  // namespace

int main(int argc, char** argv) {
  PreferAvx512Blas(argv);
  FixAllocatorThresholds();
  absl::SetProgramUsageMessage("Serves RVC speaker indexes over gRPC.\n  timbre-server --repo=DIR");
  absl::ParseCommandLine(argc, argv);
  // from_str answers `off` for a name it does not know: a typo would silence every warning.
  const std::string log_level = absl::GetFlag(FLAGS_log_level);
  const spdlog::level::level_enum level = spdlog::level::from_str(log_level);
  if (level == spdlog::level::off && log_level != "off") {
    std::fprintf(stderr,
                 "timbre-server: --log_level is '%s'; use trace, debug, info, warn, error, "
                 "critical or off\n",
                 log_level.c_str());
    return 2;
  }
  spdlog::set_level(level);

  if (!CatchStopSignals()) {
    std::perror("timbre-server: cannot catch SIGINT and SIGTERM");
    return 1;
  }

  timbre::TimbreServer::Options options;
  options.repo = absl::GetFlag(FLAGS_repo);
  options.demo_if_empty = absl::GetFlag(FLAGS_demo_if_empty);
  options.host = absl::GetFlag(FLAGS_host);
  options.port = absl::GetFlag(FLAGS_port);
  options.metrics_host = absl::GetFlag(FLAGS_metrics_host);
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.search_threads = absl::GetFlag(FLAGS_search_threads);
  options.batch_scheduling = absl::GetFlag(FLAGS_batch_scheduling);
  options.split_idle_searches = absl::GetFlag(FLAGS_split_idle_searches);
  options.search_idle_spin = absl::GetFlag(FLAGS_search_idle_spin);
  options.max_batch_frames = absl::GetFlag(FLAGS_max_batch_frames);
  options.max_frames_per_call = absl::GetFlag(FLAGS_max_frames_per_call);
  options.poll_interval = absl::GetFlag(FLAGS_poll_interval);
  options.work_dir = absl::GetFlag(FLAGS_work_dir);
  options.import_root = absl::GetFlag(FLAGS_import_root);
  options.max_upload_bytes = absl::GetFlag(FLAGS_max_upload_bytes);
  options.max_queued_builds = absl::GetFlag(FLAGS_max_queued_builds);
  options.upload_stall_timeout = absl::GetFlag(FLAGS_upload_stall_timeout);
  options.connection = ConnectionFlags();
  options.max_queued_calls = absl::GetFlag(FLAGS_max_queued_calls);
  options.security = SecurityFlags();
  options.memory_budget_bytes = absl::GetFlag(FLAGS_memory_budget_bytes);
  options.mmap_indexes = absl::GetFlag(FLAGS_mmap_indexes);
  options.exact_list_scan = absl::GetFlag(FLAGS_exact_list_scan);
  options.warmup_on_load = absl::GetFlag(FLAGS_warmup_on_load);
  options.per_speaker_metrics = absl::GetFlag(FLAGS_per_speaker_metrics);
  options.lazy_load = absl::GetFlag(FLAGS_lazy_load);
  absl::StatusOr<timbre::ServerRole> role = timbre::ParseServerRole(absl::GetFlag(FLAGS_role));
  if (!role.ok()) {
    std::fprintf(stderr, "timbre-server: %s\n", role.status().ToString().c_str());
    return 2;
  }
  options.role = *role;
  auto server = timbre::TimbreServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "timbre-server: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::thread waiter([&server] {
    const int signal = WaitForStopSignal();
    // SIGINT is someone at a terminal: no load balancer to wait for.
    const absl::Duration grace =
        signal == SIGTERM ? absl::GetFlag(FLAGS_drain_grace) : absl::ZeroDuration();
    spdlog::info("{}: draining", signal == SIGTERM ? "SIGTERM" : "SIGINT");
    (*server)->Drain(grace, absl::GetFlag(FLAGS_shutdown_grace));
  });
  (*server)->Wait();
  waiter.join();
  server->reset();
  spdlog::info("timbre-server stopped");
  return 0;
}
