#include "server/timbre_server.h"

#include <sched.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"
#include "server/build/build_job_queue.h"
#include "server/build/demo_speaker.h"
#include "server/build/feature_set_store.h"
#include "server/build/file_work_queue.h"
#include "server/build/index_builder.h"
#include "server/faiss/faiss_call.h"
#include "server/metrics/build_job_gauges.h"
#include "server/metrics/registry_recorder.h"
#include "server/metrics/server_metrics.h"
#include "server/rpc/index_builder_service.h"
#include "server/rpc/server_role.h"
#include "server/rpc/stream_drain.h"
#include "server/rpc/timbre_service.h"
#include "server/rpc/undecodable_request_interceptor.h"
#include "server/serving/retriever.h"
#include "server/serving/search_scheduler.h"
#include "server/serving/speaker_registry.h"
#include "server/serving/speaker_repository.h"
#include "spdlog/spdlog.h"

namespace timbre {

struct TimbreServer::Parts {
  std::unique_ptr<SpeakerRepository> repository;
  std::shared_ptr<prometheus::Registry> prometheus;
  std::unique_ptr<ServerMetrics> metrics;
  std::unique_ptr<RegistryRecorder> registry_recorder;
  std::unique_ptr<SpeakerRegistry> registry;
  std::unique_ptr<prometheus::Exposer> exposer;
  std::shared_ptr<SpeakerGauges> speaker_gauges;
  std::unique_ptr<SearchScheduler> scheduler;
  std::unique_ptr<Retriever> retriever;
  StreamDrain stream_drain;
  std::unique_ptr<TimbreService> service;
  std::unique_ptr<FeatureSetStore> feature_sets;
  std::unique_ptr<IndexBuilder> builder;
  std::unique_ptr<BuildJobQueue> jobs;
  // Runs the builder calls' file work; destroyed after the gRPC server, whose calls it finishes.
  std::unique_ptr<FileWorkQueue> file_work;
  std::unique_ptr<IndexBuilderService> builder_service;
  std::shared_ptr<BuildJobGauges> build_job_gauges;
  ServerRole role = ServerRole::kAll;
  // Refuses the calls of the services the role does not offer (roles other than all).
  std::unique_ptr<RoleRefusalService> role_refusal;
  // Re-reads the TLS and token files; outlives the server, which reads the TLS files from it.
  std::unique_ptr<CredentialReloader> credential_reloader;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  int metrics_port = -1;
  // Scans the repository once the port is open, then reports SERVING.
  std::thread startup;
  absl::Notification stop_startup;
  absl::Mutex mutex;
  bool serving ABSL_GUARDED_BY(mutex) = false;
  bool draining ABSL_GUARDED_BY(mutex) = false;
  bool shut_down ABSL_GUARDED_BY(mutex) = false;

  // Scrapes read the registry and the job queue (SpeakerGauges, BuildJobGauges), and the job
  // queue, declared after the exposer, is destroyed before it: the metrics endpoint stops first,
  // also when Start fails half-way (its destructor waits for a scrape in progress).
  ~Parts() { exposer.reset(); }
};

namespace {

// Options::batch_scheduling: every thread of the process under SCHED_BATCH, those running now
// (the calling one first) and, since they pass it on, every thread started from now on.
void UseBatchScheduling() {
  const sched_param param{};
  if (sched_setscheduler(0, SCHED_BATCH, &param) != 0) {
    spdlog::warn("timbre: cannot switch to the SCHED_BATCH policy ({}); threads keep theirs",
                 std::strerror(errno));
    return;
  }
  std::error_code error;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", error)) {
    const pid_t id = static_cast<pid_t>(std::strtol(task.path().filename().c_str(), nullptr, 10));
    // A thread that has ended since the listing is no error.
    if (sched_setscheduler(id, SCHED_BATCH, &param) != 0 && errno != ESRCH) {
      spdlog::warn("timbre: cannot switch thread {} to the SCHED_BATCH policy ({})", id,
                   std::strerror(errno));
    }
  }
}

absl::Status ValidateOptions(const TimbreServer::Options& options) {
  if (options.repo.empty()) return absl::InvalidArgumentError("--repo is required");
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("port ", options.port, " is out of range"));
  }
  if (options.metrics_port < -1 || options.metrics_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics port ", options.metrics_port, " is out of range"));
  }
  if (absl::Status valid = ValidateConnectionOptions(options.connection); !valid.ok()) {
    return valid;
  }
  if (options.max_queued_calls < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_queued_calls is ", options.max_queued_calls, "; it must be at least 1"));
  }
  if (options.search_idle_spin < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("--search_idle_spin is ",
                                                   absl::FormatDuration(options.search_idle_spin),
                                                   "; it must be >= 0 (0 = sleep at once)"));
  }
  if (options.upload_stall_timeout < absl::Milliseconds(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--upload_stall_timeout is ", absl::FormatDuration(options.upload_stall_timeout),
        "; it must be at least 1ms (inf: never)"));
  }
  if (options.memory_budget_bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--memory_budget_bytes is ",
                                                   options.memory_budget_bytes,
                                                   "; it must be >= 0 (0 = unlimited)"));
  }
  return absl::OkStatus();
}

// Logs what the first scan found, one line per speaker.
void LogSpeakers(const std::vector<SpeakerStatus>& speakers) {
  for (const SpeakerStatus& speaker : speakers) {
    if (speaker.snapshot != nullptr) {
      spdlog::info("speaker '{}': version {}, {} vectors of dim {}, {}", speaker.name,
                   speaker.snapshot->version, speaker.snapshot->index->size(),
                   speaker.snapshot->index->dim(), speaker.snapshot->index->description());
    } else if (speaker.state == SpeakerState::kUnloaded) {
      spdlog::info("speaker '{}': not loaded (lazy load or over the memory budget); its first "
                   "call loads it", speaker.name);
    } else {
      spdlog::warn("speaker '{}' failed: {}", speaker.name, speaker.error);
    }
  }
}

// Sets the health of the whole server and of each service its role offers.
void SetServing(TimbreServer::Parts& parts, bool serving) {
  grpc::HealthCheckServiceInterface* health = parts.server->GetHealthCheckService();
  health->SetServingStatus("", serving);
  if (ServesSpeakers(parts.role)) {
    health->SetServingStatus(timbre::v1::Timbre::service_full_name(), serving);
  }
  if (ServesBuilds(parts.role)) {
    health->SetServingStatus(timbre::v1::IndexBuilder::service_full_name(), serving);
  }
}

// The startup thread: scans the repository (retrying every second while its root cannot be
// read), then reports SERVING unless the server is already draining or stopped.
void ServeOnceScanned(TimbreServer::Parts* parts, const std::string& announcement) {
  for (;;) {
    const absl::Status scanned = parts->registry->Refresh();
    if (scanned.ok()) break;
    spdlog::error("scanning the speaker repository: {}; retrying in 1 s", scanned.ToString());
    if (parts->stop_startup.WaitForNotificationWithTimeout(absl::Seconds(1))) return;
  }
  LogSpeakers(parts->registry->List());
  absl::MutexLock lock(&parts->mutex);  // so that Drain cannot interleave
  if (parts->draining || parts->shut_down) return;
  SetServing(*parts, true);
  parts->serving = true;
  spdlog::info("{}", announcement);
}

// The feature-set store, the index builder and its job queue, and their gRPC service.
absl::Status StartBuilds(const TimbreServer::Options& options, TimbreServer::Parts* parts) {
  const std::string work_dir =
      options.work_dir.empty() ? absl::StrCat(options.repo, "/.timbre") : options.work_dir;
  FeatureSetStore::Options store_options;
  store_options.root = absl::StrCat(work_dir, "/feature-sets");
  store_options.import_root = options.import_root;
  store_options.max_upload_bytes = options.max_upload_bytes;
  auto feature_sets = FeatureSetStore::Create(store_options);
  if (!feature_sets.ok()) return feature_sets.status();
  parts->feature_sets = *std::move(feature_sets);

  // This process publishes the speakers' versions: what a crash left half-published goes.
  absl::StatusOr<int> leftovers = parts->repository->RemoveStagingLeftovers();
  if (!leftovers.ok()) return leftovers.status();
  if (*leftovers > 0) {
    spdlog::info("removed {} staging directories left in speakers' directories by a crash",
                 *leftovers);
  }

  IndexBuilder::Options builder_options;
  builder_options.feature_sets = parts->feature_sets.get();
  builder_options.repository = parts->repository.get();
  auto builder = IndexBuilder::Create(builder_options);
  if (!builder.ok()) return builder.status();
  parts->builder = *std::move(builder);

  BuildJobQueue::Options queue_options;
  queue_options.builder = parts->builder.get();
  queue_options.jobs_dir = absl::StrCat(work_dir, "/jobs");
  queue_options.max_queued = options.max_queued_builds;
  SpeakerRegistry* registry = parts->registry.get();
  queue_options.on_published = [registry](const std::string& speaker) {
    if (absl::Status refreshed = registry->Refresh(); !refreshed.ok()) {
      spdlog::warn("rescanning after publishing speaker '{}': {}", speaker, refreshed.ToString());
    }
  };
  ServerMetrics* metrics = parts->metrics.get();
  queue_options.on_finished = [metrics](const timbre::v1::BuildJob& job) {
    spdlog::info("build {} of speaker '{}': {} {}", job.id(), job.speaker(),
                 timbre::v1::BuildJob::State_Name(job.state()),
                 job.error().empty() ? absl::StrCat("version ", job.report().version()) : job.error());
    // From its start, or from its submission for a job cancelled before it started.
    const int64_t start_ms =
        job.started_at_unix_ms() > 0 ? job.started_at_unix_ms() : job.created_at_unix_ms();
    metrics->RecordBuildJob(BuildJobStateLabel(job.state()),
                            (job.finished_at_unix_ms() - start_ms) / 1000.0);
  };
  auto jobs = BuildJobQueue::Create(std::move(queue_options));
  if (!jobs.ok()) return jobs.status();
  parts->jobs = *std::move(jobs);
  FileWorkQueue::Options file_work_options;
  file_work_options.before_task = options.before_file_work;
  auto file_work = FileWorkQueue::Create(std::move(file_work_options));
  if (!file_work.ok()) return file_work.status();
  parts->file_work = *std::move(file_work);
  parts->builder_service = std::make_unique<IndexBuilderService>(
      parts->feature_sets.get(), parts->jobs.get(), parts->file_work.get(), parts->metrics.get(),
      options.upload_stall_timeout);
  if (parts->exposer != nullptr) {
    parts->build_job_gauges = std::make_shared<BuildJobGauges>(parts->jobs.get());
    parts->exposer->RegisterCollectable(parts->build_job_gauges);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<TimbreServer>> TimbreServer::Start(Options options) {
  if (absl::Status valid = ValidateOptions(options); !valid.ok()) return valid;
  // Before any thread is started, so that all inherit it.
  if (options.batch_scheduling) UseBatchScheduling();
  auto parts = std::make_unique<Parts>();
  parts->role = options.role;
  // Metrics first: the token checks and the registry's first loads record into them.
  parts->prometheus = std::make_shared<prometheus::Registry>();
  ServerMetrics::Options metrics_options;
  metrics_options.per_speaker = options.per_speaker_metrics;
  parts->metrics = std::make_unique<ServerMetrics>(*parts->prometheus, metrics_options);
  ServerMetrics* metrics = parts->metrics.get();
  options.security.on_token_refused = [metrics](absl::string_view method, grpc::StatusCode code,
                                                 absl::Duration took) {
    metrics->RecordRefusedBeforeHandler(method, code, took);
  };
  options.security.on_reloaded = [metrics](absl::string_view credentials,
                                           absl::string_view result) {
    metrics->RecordCredentialReload(credentials, result);
  };
  absl::StatusOr<ServerSecurity> security = MakeServerSecurity(options.security);
  if (!security.ok()) return security.status();
  for (const std::string& warning : security->warnings) spdlog::warn("timbre: {}", warning);
  parts->credential_reloader = std::move(security->reloader);
  spdlog::info("timbre: {}", FaissBuildInfo());
  UseSingleThreadedBlas();

  auto repository = SpeakerRepository::Create({options.repo});
  if (!repository.ok()) return repository.status();
  parts->repository = *std::move(repository);
  if (options.demo_if_empty) {
    auto speakers = parts->repository->ListSpeakers();
    if (!speakers.ok()) return speakers.status();
    if (speakers->empty()) {
      spdlog::info("repository '{}' is empty: creating speaker 'demo' from generated frames",
                   options.repo);
      auto version = CreateDemoSpeaker(*parts->repository, DemoSpeakerOptions{});
      if (!version.ok()) return version.status();
    }
  }
  parts->registry_recorder = std::make_unique<RegistryRecorder>(parts->metrics.get());
  SpeakerRegistry::Options registry_options;
  registry_options.repository = parts->repository.get();
  registry_options.poll_interval = options.poll_interval;
  registry_options.memory_budget_bytes = options.memory_budget_bytes;
  registry_options.mmap_indexes = options.mmap_indexes;
  registry_options.exact_list_scan = options.exact_list_scan;
  registry_options.warmup_on_load = options.warmup_on_load;
  registry_options.observer = parts->registry_recorder.get();
  registry_options.scan_on_create = false;  // scanned once the port is open
  // A builder serves no speaker: it never loads an index to serve.
  registry_options.lazy_load = options.lazy_load || !ServesSpeakers(options.role);
  auto registry = SpeakerRegistry::Create(registry_options);
  if (!registry.ok()) return registry.status();
  parts->registry = *std::move(registry);

  SearchScheduler::Options scheduler_options;
  scheduler_options.workers = options.search_threads;
  scheduler_options.split_when_idle = options.split_idle_searches;
  scheduler_options.idle_spin = options.search_idle_spin;
  scheduler_options.max_batch_rows = options.max_batch_frames;
  scheduler_options.max_queued_tasks = options.max_queued_calls;
  scheduler_options.before_search = options.before_search;
  auto scheduler = SearchScheduler::Create(scheduler_options);
  if (!scheduler.ok()) return scheduler.status();
  parts->scheduler = *std::move(scheduler);
  Retriever::Options retriever_options;
  retriever_options.registry = parts->registry.get();
  retriever_options.scheduler = parts->scheduler.get();
  retriever_options.max_frames_per_call = options.max_frames_per_call;
  auto retriever = Retriever::Create(retriever_options);
  if (!retriever.ok()) return retriever.status();
  parts->retriever = *std::move(retriever);

  if (options.metrics_port >= 0) {
    const std::string address = absl::StrCat(options.metrics_host, ":", options.metrics_port);
    try {
      parts->exposer = std::make_unique<prometheus::Exposer>(address);
    } catch (const std::exception& e) {
      return absl::UnavailableError(
          absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
    }
    parts->exposer->RegisterCollectable(parts->prometheus);
    parts->speaker_gauges = std::make_shared<SpeakerGauges>(parts->registry.get());
    parts->exposer->RegisterCollectable(parts->speaker_gauges);
    const std::vector<int> ports = parts->exposer->GetListeningPorts();
    parts->metrics_port = ports.empty() ? options.metrics_port : ports.front();
  }

  if (ServesBuilds(options.role)) {
    if (absl::Status builds = StartBuilds(options, parts.get()); !builds.ok()) return builds;
  }
  parts->service = std::make_unique<TimbreService>(parts->retriever.get(), parts->registry.get(),
                                                   parts->metrics.get(), &parts->stream_drain);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string address = absl::StrCat(options.host, ":", options.port);
  builder.AddListeningPort(address, security->credentials, &parts->port);
  ApplyConnectionOptions(options.connection, builder);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(
      std::make_unique<UndecodableRequestInterceptorFactory>(parts->metrics.get()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  if (ServesSpeakers(options.role)) builder.RegisterService(parts->service.get());
  if (ServesBuilds(options.role)) builder.RegisterService(parts->builder_service.get());
  if (options.role != ServerRole::kAll) {
    parts->role_refusal = std::make_unique<RoleRefusalService>(options.role);
    builder.RegisterCallbackGenericService(parts->role_refusal.get());
  }
  parts->server = builder.BuildAndStart();
  if (parts->server == nullptr || parts->port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  // gRPC's health service starts with "" SERVING; it turns NOT_SERVING within microseconds of
  // the port opening, and calls before the scan get UNAVAILABLE from the registry anyway.
  SetServing(*parts, false);
  spdlog::info("timbre listening on {}:{}: NOT_SERVING until the speaker repository is scanned",
               options.host, parts->port);
  std::string announcement =
      absl::StrCat("timbre serving on ", options.host, ":", parts->port, " (role ",
                   ServerRoleName(options.role), ", ",
                   parts->scheduler->workers(), " search threads), metrics on port ",
                   parts->metrics_port);
  Parts* started = parts.get();
  parts->startup = std::thread([started, announcement = std::move(announcement),
                                 before_first_scan = std::move(options.before_first_scan)] {
    if (before_first_scan) before_first_scan();
    ServeOnceScanned(started, announcement);
  });
  return std::unique_ptr<TimbreServer>(new TimbreServer(std::move(parts)));
}

TimbreServer::TimbreServer(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

TimbreServer::~TimbreServer() {
  Shutdown();
  parts_->stop_startup.Notify();
  parts_->startup.join();  // after a scan in progress
  // Calls waiting for a speaker's load are answered before the search workers stop.
  parts_->registry->Stop();
  // The scheduler finishes every queued search (which finishes its RPC) before the gRPC server
  // object and the service go away.
  parts_->scheduler.reset();
  parts_->server.reset();
  // Scrapes read the job queue (BuildJobGauges): the metrics endpoint stops before it goes.
  parts_->exposer.reset();
  // A running build is cancelled; its job is recorded as such.
  parts_->jobs.reset();
}

int TimbreServer::port() const { return parts_->port; }
int TimbreServer::metrics_port() const { return parts_->metrics_port; }

bool TimbreServer::WaitUntilServing(absl::Duration timeout) {
  absl::MutexLock lock(&parts_->mutex);
  return parts_->mutex.AwaitWithTimeout(absl::Condition(&parts_->serving), timeout);
}

void TimbreServer::Wait() {
  absl::MutexLock lock(&parts_->mutex);
  parts_->mutex.Await(absl::Condition(&parts_->shut_down));
}

void TimbreServer::Shutdown(absl::Duration grace) {
  {
    absl::MutexLock lock(&parts_->mutex);
    if (parts_->shut_down) return;
    parts_->shut_down = true;
  }
  parts_->server->Shutdown(std::chrono::system_clock::now() +
                           absl::ToChronoMilliseconds(grace));
}

void TimbreServer::Drain(absl::Duration grace, absl::Duration shutdown_grace) {
  spdlog::info("draining: health NOT_SERVING, shutting down in {}", absl::FormatDuration(grace));
  {
    absl::MutexLock lock(&parts_->mutex);
    parts_->draining = true;
    parts_->serving = false;
    SetServing(*parts_, false);
  }
  absl::SleepFor(grace);
  spdlog::info("draining: ending {} open streams after their current block, refusing new calls",
               parts_->stream_drain.open_streams());
  parts_->stream_drain.DrainAll();
  Shutdown(shutdown_grace);
  spdlog::info("drained: the gRPC server has stopped");
}

}  // namespace timbre
