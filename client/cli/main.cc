// timbre: command-line client of a timbre server.
//
//   timbre speakers                                     list speakers and their state
//   timbre speaker --speaker=NAME                       one speaker in detail
//   timbre blend --speaker=NAME --input=in.npy --output=out.npy [--k= --index_rate= --nprobe=]
//   timbre search --speaker=NAME --input=in.npy [--k= --nprobe=]
//   timbre bench --speaker=NAME [--concurrency= --frames= --rate= --duration= --mode=unary|stream]
//   timbre load --speaker=NAME [--warmup_index]         admin: load a speaker's index now
//   timbre unload --speaker=NAME                        admin: unload it (its next call reloads it)
//   timbre upload --input=DIR|FILE.npy                 upload a feature set (RVC's 3_feature768/)
//   timbre import --server_path=DIR                    register a server directory as a feature set
//   timbre feature-sets                                 list feature sets
//   timbre build --speaker=NAME (--features=ID | --input=DIR) [--recipe=rvc|fastscan|auto|FACTORY]
//                [--nprobe= --k_factor= --nlist= --cosine --qe_neighbours= --qe_alpha=
//                 --kmeans_above= --kmeans_centroids= --no_kmeans --seed= --min_blend_cosine=
//                 --detach --wait_replicas=H:P,... --wait_timeout=]
//                                                     build and publish a new version, live, then
//                                                     wait until the replicas serve it
//   timbre jobs | job --id=ID [--watch] | cancel --id=ID
// Every command takes --server=host:port, --retries=N (calls failing with UNAVAILABLE are retried
// 4 times by default; 0 disables), and --tls_ca / --tls_cert / --tls_key / --token_file for
// a server with TLS, client certificates or bearer tokens. Exit codes: 0 success, 1 the server
// refused or failed, 2 bad usage or an unreadable input file.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "client/cli/build_commands.h"
#include "client/cli/command_status.h"
#include "client/cli/load_generator.h"
#include "server/io/npy_file.h"
#include "timbre/timbre_client.h"

ABSL_FLAG(std::string, server, "localhost:50051", "timbre server, host:port");
ABSL_FLAG(std::string, speaker, "", "Speaker name (bench: a comma-separated list spreads the callers)");
ABSL_FLAG(std::string, input, "", "Input .npy file, float32 or float16 [frames, dim]");
ABSL_FLAG(std::string, output, "", "Output .npy file (blend), same dtype as the input");
ABSL_FLAG(int, k, 0, "Neighbours per frame; 0 = server default (8)");
ABSL_FLAG(double, index_rate, -1, "Retrieved-frame weight in [0, 1]; unset = server default (0.75)");
ABSL_FLAG(int, nprobe, 0, "Inverted lists probed; 0 = the index's stored value");
ABSL_FLAG(int, concurrency, 4, "bench: concurrent callers");
ABSL_FLAG(int, frames, 16, "bench: frames per call");
ABSL_FLAG(double, rate, 0, "bench: calls per second per caller; 0 = back to back");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10), "bench: measured duration");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1), "bench: unmeasured warm-up");
ABSL_FLAG(std::string, mode, "unary", "bench: unary or stream");
ABSL_FLAG(std::string, queries, "", "bench: .npy float32 [n, dim] query frames (default random)");
ABSL_FLAG(bool, json, false, "bench: print the report as JSON");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30), "Deadline of each call");
ABSL_FLAG(int, retries, 4,
          "Retries of a call that fails with UNAVAILABLE (backoff 0.05 s doubling to 1 s; unary "
          "calls at most 4, gRPC's cap) and reopenings of a stream; 0 disables them");
ABSL_FLAG(int, chunk_mb, 4, "upload: chunk size in MB");
ABSL_FLAG(std::string, server_path, "", "import: directory or .npy file on the server");
ABSL_FLAG(std::string, features, "", "build: feature set id (or use --input to upload first)");
ABSL_FLAG(std::string, recipe, "rvc", "build: rvc, fastscan, auto, or a faiss index_factory string");
ABSL_FLAG(int, nlist, 0, "build: inverted lists (fastscan); 0 = recipe default");
ABSL_FLAG(int, k_factor, 0, "Re-ranking factor of RFlat indexes; 0 = default");
ABSL_FLAG(bool, cosine, false, "build: L2-normalise rows, inner-product metric");
ABSL_FLAG(bool, inner_product, false, "build: inner-product metric for a factory string");
ABSL_FLAG(int, qe_neighbours, 0, "build: alpha query expansion neighbours; 0 = off");
ABSL_FLAG(double, qe_alpha, 0, "build: alpha query expansion exponent; 0 = 3");
ABSL_FLAG(int64_t, kmeans_above, 0, "build: compress sets above this many rows; 0 = 200000");
ABSL_FLAG(int, kmeans_centroids, 0, "build: k-means centroids kept; 0 = 10000");
ABSL_FLAG(bool, no_kmeans, false, "build: never compress by k-means");
ABSL_FLAG(int64_t, seed, -1, "build: shuffle seed; -1 = random (recorded in the report)");
ABSL_FLAG(double, min_blend_cosine, 0, "build (auto): fidelity target; 0 = 0.999");
ABSL_FLAG(std::string, comment, "", "build: comment stored with the version");
ABSL_FLAG(bool, detach, false, "build: return once the job has started");
ABSL_FLAG(std::string, id, "", "job/cancel: job id");
ABSL_FLAG(bool, watch, false, "job: follow the job until it ends");
ABSL_FLAG(bool, tls, false, "Use TLS (implied by the other --tls_* flags), with the system's CAs");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA certificates the server's certificate must chain to");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate, for servers that require one");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name the server's certificate must carry, if not the host of --server");
ABSL_FLAG(std::string, token_file, "", "File whose first line is the bearer token to send");
ABSL_FLAG(bool, wait_serving, true,
          "build: once published, wait until the replicas that hold the speaker serve the new "
          "version (checked through --server and at each of --wait_replicas)");
ABSL_FLAG(std::string, wait_replicas, "",
          "build: replicas to check directly besides --server, host:port,host:port");
ABSL_FLAG(absl::Duration, wait_timeout, absl::Seconds(60), "build: longest wait for the replicas");
ABSL_FLAG(bool, warmup_index, false, "load: warm the index up with searches before answering");

namespace timbre {
namespace {

v1::RetrievalOptions OptionsFromFlags() {
  v1::RetrievalOptions options;
  options.set_k(static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_k))));
  options.set_nprobe(static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_nprobe))));
  options.set_k_factor(static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_k_factor))));
  if (absl::GetFlag(FLAGS_index_rate) >= 0) {
    options.set_index_rate(static_cast<float>(absl::GetFlag(FLAGS_index_rate)));
  }
  return options;
}

// Reads --input as frames. Errors are usage errors (exit 2).
absl::StatusOr<v1::Frames> ReadInputFrames() {
  const std::string input = absl::GetFlag(FLAGS_input);
  if (input.empty()) return absl::InvalidArgumentError("--input is required");
  absl::StatusOr<NpyArray> array = ReadNpy(input);
  if (!array.ok()) return array.status();
  if (array->shape.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", input, "' has ", array->shape.size(), " dimensions; expected [frames, dim]"));
  }
  return MakeFrames(array->descr == "<f2" ? v1::DTYPE_FLOAT16 : v1::DTYPE_FLOAT32,
                    static_cast<uint32_t>(array->shape[0]), static_cast<uint32_t>(array->shape[1]),
                    std::move(array->data));
}

std::string StateName(v1::SpeakerInfo::State state) {
  switch (state) {
    case v1::SpeakerInfo::STATE_LOADED: return "loaded";
    case v1::SpeakerInfo::STATE_LOADING: return "loading";
    case v1::SpeakerInfo::STATE_FAILED: return "failed";
    case v1::SpeakerInfo::STATE_UNLOADED: return "unloaded";
    default: return "unknown";
  }
}

int Speakers(const TimbreClient& client) {
  auto speakers = client.ListSpeakers();
  if (!speakers.ok()) return Fail(kExitFailed, speakers.status());
  std::printf("%-24s %-8s %5s %10s %-22s %6s %-12s %10s\n", "SPEAKER", "STATE", "DIM", "VECTORS",
              "INDEX", "NPROBE", "VERSION", "MEMORY_MB");
  for (const v1::SpeakerInfo& s : speakers->speakers()) {
    std::printf("%-24s %-8s %5u %10llu %-22s %6u %-12s %10.1f\n", s.name().c_str(),
                StateName(s.state()).c_str(), s.dim(),
                static_cast<unsigned long long>(s.num_vectors()), s.description().c_str(),
                s.nprobe(), s.version().c_str(), s.memory_bytes() / 1048576.0);
    if (!s.error().empty()) std::printf("  error: %s\n", s.error().c_str());
  }
  return 0;
}

int Speaker(const TimbreClient& client) {
  auto info = client.GetSpeaker(absl::GetFlag(FLAGS_speaker));
  if (!info.ok()) return Fail(kExitFailed, info.status());
  std::printf("%s", info->DebugString().c_str());
  return 0;
}

// load / unload: the speaker's state afterwards, in one line.
int LoadOrUnload(const std::string& command, const TimbreClient& client) {
  const std::string speaker = absl::GetFlag(FLAGS_speaker);
  auto info = command == "load"
                  ? client.LoadSpeaker(speaker, absl::GetFlag(FLAGS_warmup_index))
                  : client.UnloadSpeaker(speaker);
  if (!info.ok()) return Fail(kExitFailed, info.status());
  std::string line = absl::StrCat("speaker '", info->name(), "' ", StateName(info->state()));
  if (info->state() == v1::SpeakerInfo::STATE_LOADED) {
    absl::StrAppendFormat(&line, ": version %s, %llu vectors of dim %u, %s, %.1f MB in memory",
                          info->version(), static_cast<unsigned long long>(info->num_vectors()),
                          info->dim(), info->description(), info->memory_bytes() / 1048576.0);
    if (info->mapped_bytes() > 0) {
      absl::StrAppendFormat(&line, ", %.1f MB mapped", info->mapped_bytes() / 1048576.0);
    }
  }
  std::printf("%s\n", line.c_str());
  return 0;
}

int Blend(const TimbreClient& client) {
  if (absl::GetFlag(FLAGS_output).empty()) {
    return Fail(kExitUsage, absl::InvalidArgumentError("--output is required"));
  }
  absl::StatusOr<v1::Frames> frames = ReadInputFrames();
  if (!frames.ok()) return Fail(kExitUsage, frames.status());
  v1::BlendRequest request;
  request.set_speaker(absl::GetFlag(FLAGS_speaker));
  *request.mutable_frames() = *std::move(frames);
  *request.mutable_options() = OptionsFromFlags();
  auto response = client.Blend(request);
  if (!response.ok()) return Fail(kExitFailed, response.status());
  NpyArray out;
  out.descr = response->frames().dtype() == v1::DTYPE_FLOAT16 ? "<f2" : "<f4";
  out.shape = {response->frames().num_frames(), response->frames().dim()};
  out.data = response->frames().data();
  if (absl::Status written = WriteNpy(absl::GetFlag(FLAGS_output), out); !written.ok()) {
    return Fail(kExitFailed, written);
  }
  std::printf("blended %u frames with speaker '%s' version %s in %.3f ms server time\n",
              response->frames().num_frames(), request.speaker().c_str(),
              response->version().c_str(),
              (response->timing().queue_us() + response->timing().search_us() +
               response->timing().blend_us()) / 1e3);
  return 0;
}

int Search(const TimbreClient& client) {
  absl::StatusOr<v1::Frames> frames = ReadInputFrames();
  if (!frames.ok()) return Fail(kExitUsage, frames.status());
  v1::SearchRequest request;
  request.set_speaker(absl::GetFlag(FLAGS_speaker));
  *request.mutable_frames() = *std::move(frames);
  *request.mutable_options() = OptionsFromFlags();
  auto response = client.Search(request);
  if (!response.ok()) return Fail(kExitFailed, response.status());
  const uint32_t k = response->k();
  for (uint32_t i = 0; i < response->num_frames(); ++i) {
    std::string line = absl::StrCat("frame ", i, ":");
    for (uint32_t j = 0; j < k; ++j) {
      absl::StrAppendFormat(&line, " %d:%.4g", response->ids(i * k + j),
                            response->distances(i * k + j));
    }
    std::printf("%s\n", line.c_str());
  }
  return 0;
}

int Bench(const TimbreClient& client) {
  LoadOptions options;
  options.speaker = absl::GetFlag(FLAGS_speaker);
  options.concurrency = absl::GetFlag(FLAGS_concurrency);
  options.frames = absl::GetFlag(FLAGS_frames);
  options.rate = absl::GetFlag(FLAGS_rate);
  options.duration = absl::GetFlag(FLAGS_duration);
  options.warmup = absl::GetFlag(FLAGS_warmup);
  options.options = OptionsFromFlags();
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode != "unary" && mode != "stream") {
    return Fail(kExitUsage, absl::InvalidArgumentError(
                                absl::StrCat("--mode is '", mode, "'; use unary or stream")));
  }
  options.streaming = mode == "stream";
  if (!absl::GetFlag(FLAGS_queries).empty()) {
    absl::StatusOr<NpyArray> queries = ReadNpy(absl::GetFlag(FLAGS_queries));
    if (!queries.ok()) return Fail(kExitUsage, queries.status());
    if (queries->descr != "<f4" || queries->shape.size() != 2) {
      return Fail(kExitUsage, absl::InvalidArgumentError("--queries must be float32 [n, dim]"));
    }
    options.query_rows = queries->shape[0];
    options.queries.resize(queries->data.size() / sizeof(float));
    std::memcpy(options.queries.data(), queries->data.data(), queries->data.size());
  }
  absl::StatusOr<LoadReport> report = RunLoad(client, options);
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

v1::BuildIndexRequest BuildRequestFromFlags(const std::string& feature_set_id) {
  v1::BuildIndexRequest request;
  request.set_speaker(absl::GetFlag(FLAGS_speaker));
  request.set_feature_set_id(feature_set_id);
  request.set_comment(absl::GetFlag(FLAGS_comment));
  v1::Recipe& recipe = *request.mutable_recipe();
  recipe = RecipeNamed(absl::GetFlag(FLAGS_recipe));
  recipe.set_inner_product(absl::GetFlag(FLAGS_inner_product));
  recipe.set_nlist(static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_nlist))));
  recipe.set_nprobe(static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_nprobe))));
  recipe.set_k_factor(static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_k_factor))));
  recipe.set_cosine(absl::GetFlag(FLAGS_cosine));
  recipe.mutable_query_expansion()->set_neighbours(
      static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_qe_neighbours))));
  recipe.mutable_query_expansion()->set_alpha(static_cast<float>(absl::GetFlag(FLAGS_qe_alpha)));
  recipe.mutable_kmeans()->set_disabled(absl::GetFlag(FLAGS_no_kmeans));
  recipe.mutable_kmeans()->set_above_rows(
      static_cast<uint64_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_kmeans_above))));
  recipe.mutable_kmeans()->set_centroids(
      static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_kmeans_centroids))));
  if (absl::GetFlag(FLAGS_seed) >= 0) {
    recipe.set_shuffle_seed(static_cast<uint32_t>(absl::GetFlag(FLAGS_seed)));
  }
  recipe.set_min_blend_cosine(absl::GetFlag(FLAGS_min_blend_cosine));
  return request;
}

// The feature-set and build commands.
int BuilderCommand(const std::string& command, const BuilderClient& client,
                   const TimbreClient::Options& client_options) {
  const int64_t chunk_bytes = int64_t{std::max(1, absl::GetFlag(FLAGS_chunk_mb))} << 20;
  const std::string input = absl::GetFlag(FLAGS_input);
  const std::string id = absl::GetFlag(FLAGS_id);
  if ((command == "job" || command == "cancel") && id.empty()) {
    return Fail(kExitUsage, absl::InvalidArgumentError("--id is required"));
  }
  if (command == "upload") {
    if (input.empty()) return Fail(kExitUsage, absl::InvalidArgumentError("--input is required"));
    return UploadCommand(client, input, chunk_bytes);
  }
  if (command == "import") {
    if (absl::GetFlag(FLAGS_server_path).empty()) {
      return Fail(kExitUsage, absl::InvalidArgumentError("--server_path is required"));
    }
    return ImportCommand(client, absl::GetFlag(FLAGS_server_path));
  }
  if (command == "feature-sets") return FeatureSetsCommand(client);
  if (command == "jobs") return JobsCommand(client);
  if (command == "job") return JobCommand(client, id, absl::GetFlag(FLAGS_watch));
  if (command == "cancel") return CancelCommand(client, id);
  // build
  if (absl::GetFlag(FLAGS_speaker).empty()) {
    return Fail(kExitUsage, absl::InvalidArgumentError("--speaker is required"));
  }
  std::string feature_set_id = absl::GetFlag(FLAGS_features);
  if (feature_set_id.empty() == input.empty()) {
    return Fail(kExitUsage, absl::InvalidArgumentError(
                                "build needs exactly one of --features=ID and --input=DIR|FILE"));
  }
  if (!input.empty()) {
    auto uploaded = client.Upload(input, chunk_bytes, [](int64_t, int64_t) {});
    if (!uploaded.ok()) return Fail(kExitFailed, uploaded.status());
    std::printf("uploaded feature set %s (%llu rows of dim %u)\n", uploaded->id().c_str(),
                static_cast<unsigned long long>(uploaded->rows()), uploaded->dim());
    feature_set_id = uploaded->id();
  }
  VersionWaitOptions wait;
  wait.timeout = absl::GetFlag(FLAGS_wait_timeout);
  wait.targets.push_back(client_options);
  for (absl::string_view replica :
       absl::StrSplit(absl::GetFlag(FLAGS_wait_replicas), ',', absl::SkipEmpty())) {
    wait.targets.push_back(client_options);
    wait.targets.back().target = std::string(replica);
  }
  return BuildCommand(client, BuildRequestFromFlags(feature_set_id), absl::GetFlag(FLAGS_detach),
                      absl::GetFlag(FLAGS_wait_serving) ? &wait : nullptr);
}

bool IsBuilderCommand(const std::string& command) {
  return command == "upload" || command == "import" || command == "feature-sets" ||
         command == "build" || command == "jobs" || command == "job" || command == "cancel";
}

}  // namespace
}  // namespace timbre

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "timbre speakers|speaker|blend|search|bench|load|unload|upload|import|feature-sets|build|"
      "jobs|job|cancel [--server=host:port] [flags]");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) {
    std::fprintf(stderr, "usage: %s\n", absl::ProgramUsageMessage().data());
    return timbre::kExitUsage;
  }
  const std::string command = args[1];
  if (command != "speakers" && command != "speaker" && command != "blend" &&
      command != "search" && command != "bench" && command != "load" && command != "unload" &&
      !timbre::IsBuilderCommand(command)) {
    std::fprintf(stderr, "timbre: unknown command '%s'\nusage: %s\n", command.c_str(),
                 absl::ProgramUsageMessage().data());
    return timbre::kExitUsage;
  }
  timbre::TimbreClient::Options options;
  options.target = absl::GetFlag(FLAGS_server);
  options.timeout = absl::GetFlag(FLAGS_timeout);
  options.retries = absl::GetFlag(FLAGS_retries);
  options.tls = absl::GetFlag(FLAGS_tls);
  options.tls_ca_file = absl::GetFlag(FLAGS_tls_ca);
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  options.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  if (!absl::GetFlag(FLAGS_token_file).empty()) {
    absl::StatusOr<std::string> token = timbre::ReadTokenFile(absl::GetFlag(FLAGS_token_file));
    if (!token.ok()) return timbre::Fail(timbre::kExitUsage, token.status());
    options.token = *std::move(token);
  }
  if (timbre::IsBuilderCommand(command)) {
    auto builder = timbre::BuilderClient::Create(options);
    if (!builder.ok()) return timbre::Fail(timbre::kExitUsage, builder.status());
    return timbre::BuilderCommand(command, **builder, options);
  }
  auto client = timbre::TimbreClient::Create(options);
  if (!client.ok()) return timbre::Fail(timbre::kExitUsage, client.status());
  const bool needs_speaker = command != "speakers";
  if (needs_speaker && absl::GetFlag(FLAGS_speaker).empty()) {
    return timbre::Fail(timbre::kExitUsage, absl::InvalidArgumentError("--speaker is required"));
  }
  if (command == "speakers") return timbre::Speakers(**client);
  if (command == "speaker") return timbre::Speaker(**client);
  if (command == "blend") return timbre::Blend(**client);
  if (command == "search") return timbre::Search(**client);
  if (command == "load" || command == "unload") return timbre::LoadOrUnload(command, **client);
  return timbre::Bench(**client);
}
