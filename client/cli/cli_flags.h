// The flags of the `timbre` CLI (defined in cli_flags.cc, part of the binary only). Each command
// says which of them it takes (Command::flags); the connection flags go with every command.
#ifndef TIMBRE_CLIENT_CLI_CLI_FLAGS_H_
#define TIMBRE_CLIENT_CLI_CLI_FLAGS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "timbre/timbre_client.h"

// Connection, every command.
ABSL_DECLARE_FLAG(std::string, server);
ABSL_DECLARE_FLAG(absl::Duration, timeout);
ABSL_DECLARE_FLAG(int, retries);
ABSL_DECLARE_FLAG(bool, tls);
ABSL_DECLARE_FLAG(std::string, tls_ca);
ABSL_DECLARE_FLAG(std::string, tls_cert);
ABSL_DECLARE_FLAG(std::string, tls_key);
ABSL_DECLARE_FLAG(std::string, tls_server_name);
ABSL_DECLARE_FLAG(std::string, token_file);
// Speakers and frames.
ABSL_DECLARE_FLAG(std::string, speaker);
ABSL_DECLARE_FLAG(std::string, input);
ABSL_DECLARE_FLAG(std::string, output);
ABSL_DECLARE_FLAG(int, k);
ABSL_DECLARE_FLAG(double, index_rate);
ABSL_DECLARE_FLAG(int, nprobe);
ABSL_DECLARE_FLAG(int, k_factor);
ABSL_DECLARE_FLAG(bool, warmup_index);
// bench.
ABSL_DECLARE_FLAG(int, concurrency);
ABSL_DECLARE_FLAG(int, frames);
ABSL_DECLARE_FLAG(double, rate);
ABSL_DECLARE_FLAG(absl::Duration, duration);
ABSL_DECLARE_FLAG(absl::Duration, warmup);
ABSL_DECLARE_FLAG(std::string, mode);
ABSL_DECLARE_FLAG(std::string, queries);
ABSL_DECLARE_FLAG(bool, json);
// Feature sets, builds and jobs.
ABSL_DECLARE_FLAG(int, chunk_mb);
ABSL_DECLARE_FLAG(std::string, server_path);
ABSL_DECLARE_FLAG(std::string, features);
ABSL_DECLARE_FLAG(std::string, recipe);
ABSL_DECLARE_FLAG(int, nlist);
ABSL_DECLARE_FLAG(bool, cosine);
ABSL_DECLARE_FLAG(bool, inner_product);
ABSL_DECLARE_FLAG(int, qe_neighbours);
ABSL_DECLARE_FLAG(double, qe_alpha);
ABSL_DECLARE_FLAG(int64_t, kmeans_above);
ABSL_DECLARE_FLAG(int, kmeans_centroids);
ABSL_DECLARE_FLAG(bool, no_kmeans);
ABSL_DECLARE_FLAG(int64_t, seed);
ABSL_DECLARE_FLAG(double, min_blend_cosine);
ABSL_DECLARE_FLAG(double, max_call_ms);
ABSL_DECLARE_FLAG(std::string, comment);
ABSL_DECLARE_FLAG(bool, detach);
ABSL_DECLARE_FLAG(bool, wait_serving);
ABSL_DECLARE_FLAG(std::string, wait_replicas);
ABSL_DECLARE_FLAG(absl::Duration, wait_timeout);
ABSL_DECLARE_FLAG(std::string, id);
ABSL_DECLARE_FLAG(bool, watch);

namespace timbre {

// The flags every command takes: where the server is and how to reach it.
const std::vector<std::string>& ConnectionFlags();

// The client options the connection flags ask for. Errors: NOT_FOUND/INVALID_ARGUMENT for an
// unreadable or empty --token_file.
absl::StatusOr<TimbreClient::Options> ConnectionFromFlags();

// --chunk_mb in bytes (at least 1 MB).
int64_t ChunkBytesFromFlags();


}  // namespace timbre

#endif  // TIMBRE_CLIENT_CLI_CLI_FLAGS_H_
