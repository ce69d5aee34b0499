// TimbreServer: assembles the core and the gRPC service into a running server.
//
// Start() opens the speaker repository (creating a demo speaker in an empty one if asked),
// starts the search workers, the build-job worker, the file worker of the builder calls
// (FileWorkQueue), the gRPC server (timbre.v1.Timbre,
// timbre.v1.IndexBuilder, the standard grpc.health.v1 service and server reflection) and the
// Prometheus endpoint, and returns once the port is open. A startup thread then scans the
// repository and loads every speaker (those that fit, under a memory budget).
//
// Health: NOT_SERVING for "", "timbre.v1.Timbre" and "timbre.v1.IndexBuilder" while the first
// scan runs (calls about speakers get UNAVAILABLE meanwhile, and are retried by clients), SERVING
// once it has finished (logged as "timbre serving on HOST:PORT"), and NOT_SERVING again from the
// moment Drain() starts.
//
// Thread-safe.
#ifndef TIMBRE_SERVER_TIMBRE_SERVER_H_
#define TIMBRE_SERVER_TIMBRE_SERVER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/rpc/connection_options.h"
#include "server/rpc/server_role.h"
#include "server/security/server_security.h"

namespace timbre {

class TimbreServer {
 public:
  struct Options {
    // Speaker repository directory. Required.
    std::string repo;
    // Create a demo speaker from generated frames when the repository has no speaker.
    // Default off.
    bool demo_if_empty = false;
    // gRPC listening address and port. Default "0.0.0.0", 50051. Port 0 picks a free port (see
    // port()).
    std::string host = "0.0.0.0";
    int port = 50051;
    // Prometheus endpoint (/metrics) address and port. Port 0 picks a free port; -1 disables it.
    // Default "0.0.0.0", 9464.
    std::string metrics_host = "0.0.0.0";
    int metrics_port = 9464;
    // Search worker threads; 0 = one per core. Default 0.
    int search_threads = 0;
    // Start switches every thread of the process to Linux's SCHED_BATCH policy, the calling one
    // first, so that every thread started afterwards (search workers, gRPC's) inherits it: a
    // server thread woken on a busy core waits for the running one's time slice instead of
    // preempting it at once. Search workers are preempted far less often; on the benchmark's
    // 2-core machine saturation rose by 9-14% (README, Performance design). Idle cores still
    // take a woken thread at once. If Linux refuses, Start logs a warning and goes on.
    // Default true.
    bool batch_scheduling = true;
    // Split a lone call's search across the idle search workers (see
    // SearchScheduler::Options::split_when_idle). Default true.
    bool split_idle_searches = true;
    // How long a search worker keeps polling for the next call before it sleeps (see
    // SearchScheduler::Options::idle_spin); must not be negative. Default zero: it sleeps at once.
    absl::Duration search_idle_spin = absl::ZeroDuration();
    // Most frames merged into one search batch (SearchScheduler::Options::max_batch_rows).
    // Default 64.
    int64_t max_batch_frames = 64;
    // Most frames in one call; larger calls get INVALID_ARGUMENT. Default 4096.
    int64_t max_frames_per_call = 4096;
    // How often the repository is rescanned for new versions; zero disables. Default 2 s.
    absl::Duration poll_interval = absl::Seconds(2);
    // Message size limits, keepalive and connection age; see connection_options.h for each
    // field and its default.
    ConnectionOptions connection;
    // TLS, client certificates, bearer tokens and how often their files are read again; see
    // security_options.h. Default: plain text, unauthenticated (logged as a warning at every
    // start).
    SecurityOptions security;
    // Most calls waiting for a search worker (stream blocks count as calls); more are refused at
    // once with RESOURCE_EXHAUSTED. Default 64.
    int max_queued_calls = 64;
    // Where uploaded feature sets and build job records are kept. Default: "<repo>/.timbre"
    // (hidden entries of the repository are never read as speakers).
    std::string work_dir;
    // Server directories that ImportFeatures may read from; empty disables ImportFeatures.
    // Default empty.
    std::string import_root;
    // Largest feature-set upload, in bytes. Default 4 GiB.
    int64_t max_upload_bytes = int64_t{4} << 30;
    // Most build jobs waiting behind the running one. Default 16.
    int max_queued_builds = 16;
    // An upload whose client sends no complete message for this long is ended with
    // DEADLINE_EXCEEDED and stores nothing. Infinite: never. Default 60 s.
    absl::Duration upload_stall_timeout = absl::Seconds(60);
    // Most bytes the loaded indexes may take together (their heap memory; memory-mapped lists
    // are not counted). Loading a speaker beyond it first unloads the least recently used ones.
    // Default 0: unlimited.
    int64_t memory_budget_bytes = 0;
    // Memory-map the inverted lists of IVF indexes instead of reading them into memory.
    // Default false.
    bool mmap_indexes = false;
    // Scan IVF-Flat lists with timbre's exact list scan, which keeps 8-bit codes of every vector
    // (a quarter more memory; faiss's result, faster). Not with mmap_indexes. Default true.
    bool exact_list_scan = true;
    // Search generated frames through every newly loaded index before it serves. Default false.
    bool warmup_on_load = false;
    // Label call latency and frame metrics with the speaker too. Default false.
    bool per_speaker_metrics = false;
    // The services this process offers (see server_role.h). kServing runs no build job queue
    // (the builder owns the work directory); kBuilder loads no index. Default kAll.
    ServerRole role = ServerRole::kAll;
    // Load no speaker at a scan: each loads on its first call (concurrent callers share the
    // load), so health turns SERVING once the repository is scanned and a replica behind a
    // balancer with speaker affinity holds only the speakers routed to it. Loaded speakers
    // still pick up new versions at each scan. Default false.
    bool lazy_load = false;
    // Called on the startup thread, after the port has opened and before the first repository
    // scan; the scan waits until it returns. Lets a test hold the server in its not-yet-scanned
    // state. Default none.
    std::function<void()> before_first_scan;
    // Called on the builder's file worker before each piece of file work of an IndexBuilder
    // call (an import, an upload's message, a deletion, a job submission or cancellation; see
    // index_builder_service.h). Lets a test hold that work while other calls are answered.
    // Default none.
    std::function<void()> before_file_work;
    // Called on a search worker before each search (SearchScheduler::Options::before_search).
    // Lets a test hold the workers busy. Default none.
    std::function<void()> before_search;
  };

  // Errors: INVALID_ARGUMENT for bad options; NOT_FOUND for a missing repository or an
  // unreadable TLS or token file (MakeServerSecurity); UNAVAILABLE if a port cannot be bound.
  // A repository that cannot be scanned later is logged and scanned again every second.
  static absl::StatusOr<std::unique_ptr<TimbreServer>> Start(Options options);

  // Stops accepting calls (if Shutdown() has not), lets calls in flight finish for up to
  // kDefaultShutdownGrace, then cancels the rest.
  ~TimbreServer();

  // The bound gRPC and metrics ports (useful with port 0); metrics_port() is -1 when disabled.
  int port() const;
  int metrics_port() const;

  // Blocks until the health service reports SERVING (the first scan has finished), for at most
  // `timeout`. Returns whether it does.
  bool WaitUntilServing(absl::Duration timeout);

  // How long calls in flight may take to finish once the server stops taking calls, unless
  // Shutdown() or Drain() are told otherwise: 5 s.
  static constexpr absl::Duration kDefaultShutdownGrace = absl::Seconds(5);

  // Blocks until Shutdown() is called.
  void Wait();
  // Stops the server; calls in flight get up to `grace` to finish.
  void Shutdown(absl::Duration grace = kDefaultShutdownGrace);
  // Takes the server out of service without failing a call: sets health NOT_SERVING for every
  // service, keeps serving for `grace` so that load balancers stop routing here, ends every
  // BlendStream after the block it is on (UNAVAILABLE, naming the shutdown), then Shutdown(
  // shutdown_grace): new calls are refused and calls in flight finish. Blocks until the gRPC
  // server has stopped. Call once.
  void Drain(absl::Duration grace, absl::Duration shutdown_grace = kDefaultShutdownGrace);

  struct Parts;

 private:
  explicit TimbreServer(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_TIMBRE_SERVER_H_
