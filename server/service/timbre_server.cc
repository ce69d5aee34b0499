#include "server/service/timbre_server.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"
#include "server/core/demo_speaker.h"
#include "server/core/faiss_index.h"
#include "server/core/retriever.h"
#include "server/core/search_scheduler.h"
#include "server/core/speaker_registry.h"
#include "server/core/speaker_repository.h"
#include "server/service/registry_recorder.h"
#include "server/service/server_metrics.h"
#include "server/service/timbre_service.h"
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
  std::unique_ptr<TimbreService> service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  int metrics_port = -1;
  absl::Mutex mutex;
  bool shut_down ABSL_GUARDED_BY(mutex) = false;
};

namespace {

absl::Status ValidateOptions(const TimbreServer::Options& options) {
  if (options.repo.empty()) return absl::InvalidArgumentError("--repo is required");
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("port ", options.port, " is out of range"));
  }
  if (options.metrics_port < -1 || options.metrics_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics port ", options.metrics_port, " is out of range"));
  }
  if (options.max_message_bytes < 1024) {
    return absl::InvalidArgumentError("max message size must be at least 1024 bytes");
  }
  if (options.memory_budget_bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--memory_budget_bytes is ",
                                                   options.memory_budget_bytes,
                                                   "; it must be >= 0 (0 = unlimited)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<TimbreServer>> TimbreServer::Start(Options options) {
  if (absl::Status valid = ValidateOptions(options); !valid.ok()) return valid;
  auto parts = std::make_unique<Parts>();
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
  parts->prometheus = std::make_shared<prometheus::Registry>();
  ServerMetrics::Options metrics_options;
  metrics_options.per_speaker = options.per_speaker_metrics;
  parts->metrics = std::make_unique<ServerMetrics>(*parts->prometheus, metrics_options);
  parts->registry_recorder = std::make_unique<RegistryRecorder>(parts->metrics.get());
  SpeakerRegistry::Options registry_options;
  registry_options.repository = parts->repository.get();
  registry_options.poll_interval = options.poll_interval;
  registry_options.memory_budget_bytes = options.memory_budget_bytes;
  registry_options.mmap_indexes = options.mmap_indexes;
  registry_options.warmup_on_load = options.warmup_on_load;
  registry_options.observer = parts->registry_recorder.get();
  auto registry = SpeakerRegistry::Create(registry_options);
  if (!registry.ok()) return registry.status();
  parts->registry = *std::move(registry);
  for (const SpeakerStatus& speaker : parts->registry->List()) {
    if (speaker.snapshot != nullptr) {
      spdlog::info("speaker '{}': version {}, {} vectors of dim {}, {}", speaker.name,
                   speaker.snapshot->version, speaker.snapshot->index->size(),
                   speaker.snapshot->index->dim(), speaker.snapshot->index->description());
    } else if (speaker.state == SpeakerState::kUnloaded) {
      spdlog::info("speaker '{}': not loaded (over the memory budget); its first call loads it",
                   speaker.name);
    } else {
      spdlog::warn("speaker '{}' failed: {}", speaker.name, speaker.error);
    }
  }

  SearchScheduler::Options scheduler_options;
  scheduler_options.workers = options.search_threads;
  scheduler_options.max_batch_rows = options.max_batch_frames;
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

  parts->service = std::make_unique<TimbreService>(parts->retriever.get(), parts->registry.get(),
                                                   parts->metrics.get());
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string address = absl::StrCat(options.host, ":", options.port);
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &parts->port);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  builder.RegisterService(parts->service.get());
  parts->server = builder.BuildAndStart();
  if (parts->server == nullptr || parts->port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  spdlog::info("timbre serving on {}:{} ({} search threads), metrics on port {}", options.host,
               parts->port, parts->scheduler->workers(), parts->metrics_port);
  return std::unique_ptr<TimbreServer>(new TimbreServer(std::move(parts)));
}

TimbreServer::TimbreServer(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

TimbreServer::~TimbreServer() {
  Shutdown();
  // Calls waiting for a speaker's load are answered before the search workers stop.
  parts_->registry->Stop();
  // The scheduler finishes every queued search (which finishes its RPC) before the gRPC server
  // object and the service go away.
  parts_->scheduler.reset();
  parts_->server.reset();
}

int TimbreServer::port() const { return parts_->port; }
int TimbreServer::metrics_port() const { return parts_->metrics_port; }

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

}  // namespace timbre
