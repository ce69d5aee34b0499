#include "client/cli/cli_flags.h"

#include <algorithm>

#include "absl/flags/flag.h"
#include "client/cli/load_generator.h"
#include "client/cli/version_wait.h"

namespace {
const timbre::TimbreClient::Options kClientDefaults{};
const timbre::LoadOptions kLoadDefaults{};
const timbre::VersionWaitOptions kWaitDefaults{};
}  // namespace

ABSL_FLAG(std::string, server, "localhost:50051", "timbre server, host:port");
ABSL_FLAG(absl::Duration, timeout, kClientDefaults.timeout, "Deadline of each call");
ABSL_FLAG(int, retries, kClientDefaults.retries,
          "Retries of a call that fails with UNAVAILABLE (backoff 0.05 s doubling to 1 s; unary "
          "calls at most 4, gRPC's cap) and reopenings of a stream; 0 disables them");
ABSL_FLAG(bool, tls, false, "Use TLS (implied by the other --tls_* flags), with the system's CAs");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA certificates the server's certificate must chain to");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate, for servers that require one");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name the server's certificate must carry, if not the host of --server");
ABSL_FLAG(std::string, token_file, "", "File whose first line is the bearer token to send");

ABSL_FLAG(std::string, speaker, "",
          "Speaker name (bench: a comma-separated list spreads the callers)");
ABSL_FLAG(std::string, input, "",
          "Input: an .npy file, float32 or float16 [frames, dim] (upload and build: a directory "
          "of them, such as RVC's 3_feature768, or one file)");
ABSL_FLAG(std::string, output, "", "Output .npy file, same dtype as the input");
ABSL_FLAG(int, k, 0, "Neighbours per frame; 0 = server default (8)");
ABSL_FLAG(double, index_rate, -1,
          "Retrieved-frame weight in [0, 1]; unset = server default (0.75)");
ABSL_FLAG(int, nprobe, 0, "Inverted lists probed; 0 = the index's stored value");
ABSL_FLAG(int, k_factor, 0, "Re-ranking factor of RFlat indexes; 0 = default");
ABSL_FLAG(bool, warmup_index, false, "Warm the index up with searches before answering");

ABSL_FLAG(int, concurrency, kLoadDefaults.concurrency, "Concurrent callers");
ABSL_FLAG(int, frames, kLoadDefaults.frames, "Frames per call");
ABSL_FLAG(double, rate, kLoadDefaults.rate, "Calls per second per caller; 0 = back to back");
ABSL_FLAG(absl::Duration, duration, kLoadDefaults.duration, "Measured duration");
ABSL_FLAG(absl::Duration, warmup, kLoadDefaults.warmup, "Unmeasured warm-up");
ABSL_FLAG(std::string, mode, "unary", "unary (Blend calls) or stream (one BlendStream per caller)");
ABSL_FLAG(std::string, queries, "", ".npy float32 [n, dim] query frames (default random)");
ABSL_FLAG(bool, json, false, "Print the report as JSON");

ABSL_FLAG(int, chunk_mb, 4, "Upload chunk size in MB");
ABSL_FLAG(std::string, server_path, "", "Directory or .npy file on the server");
ABSL_FLAG(std::string, features, "", "Feature set id (or use --input to upload first)");
ABSL_FLAG(std::string, recipe, "rvc", "rvc, fastscan, auto, or a faiss index_factory string");
ABSL_FLAG(int, nlist, 0, "Inverted lists (fastscan); 0 = recipe default");
ABSL_FLAG(bool, cosine, false, "L2-normalise rows, inner-product metric");
ABSL_FLAG(bool, inner_product, false, "Inner-product metric for a factory string");
ABSL_FLAG(int, qe_neighbours, 0, "Alpha query expansion neighbours; 0 = off");
ABSL_FLAG(double, qe_alpha, 0, "Alpha query expansion exponent; 0 = 3");
ABSL_FLAG(int64_t, kmeans_above, 0, "Compress sets above this many rows; 0 = 200000");
ABSL_FLAG(int, kmeans_centroids, 0, "K-means centroids kept; 0 = 10000");
ABSL_FLAG(bool, no_kmeans, false, "Never compress by k-means");
ABSL_FLAG(int64_t, seed, -1, "Shuffle seed; -1 = random (recorded in the report)");
ABSL_FLAG(double, min_blend_cosine, 0,
          "Fidelity target of the auto recipe on the set's own held-out frames; 0 = 0.9997 (about "
          "0.999 for another voice's frames)");
ABSL_FLAG(double, max_call_ms, 0,
          "Latency bound of the auto recipe on a candidate's p50 per 16-frame call, ms; 0 = that "
          "of RVC's own recipe searched without timbre's pruned steps, measured in the build");
ABSL_FLAG(std::string, comment, "", "Comment stored with the version");
ABSL_FLAG(bool, detach, false, "Return once the job has started");
ABSL_FLAG(bool, wait_serving, true,
          "Once published, wait until the replicas that hold the speaker serve the new version "
          "(checked through --server and at each of --wait_replicas)");
ABSL_FLAG(std::string, wait_replicas, "",
          "Replicas to check directly besides --server, host:port,host:port");
ABSL_FLAG(absl::Duration, wait_timeout, kWaitDefaults.timeout, "Longest wait for the replicas");
ABSL_FLAG(std::string, id, "", "Job id");
ABSL_FLAG(bool, watch, false, "Follow the job until it ends");

namespace timbre {

const std::vector<std::string>& ConnectionFlags() {
  static const std::vector<std::string> flags = {
      "server", "timeout", "retries", "tls", "tls_ca", "tls_cert", "tls_key", "tls_server_name",
      "token_file"};
  return flags;
}

absl::StatusOr<TimbreClient::Options> ConnectionFromFlags() {
  TimbreClient::Options options;
  options.target = absl::GetFlag(FLAGS_server);
  options.timeout = absl::GetFlag(FLAGS_timeout);
  options.retries = absl::GetFlag(FLAGS_retries);
  options.tls = absl::GetFlag(FLAGS_tls);
  options.tls_ca_file = absl::GetFlag(FLAGS_tls_ca);
  options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  options.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  if (!absl::GetFlag(FLAGS_token_file).empty()) {
    absl::StatusOr<std::string> token = ReadTokenFile(absl::GetFlag(FLAGS_token_file));
    if (!token.ok()) return token.status();
    options.token = *std::move(token);
  }
  return options;
}

int64_t ChunkBytesFromFlags() { return int64_t{std::max(1, absl::GetFlag(FLAGS_chunk_mb))} << 20; }

}  // namespace timbre
