// ConnectionOptions: the gRPC transport settings of a timbre server: message and metadata size
// limits, keepalive pings, the maximum age and idle time of a connection and the calls one
// connection may have open.
//
// Connection age matters behind an L7 load balancer: gRPC clients keep one HTTP/2 connection for
// as long as they run, so servers added later would get no traffic. With a maximum age the server
// asks each client to reconnect (HTTP/2 GOAWAY) after that long; calls in flight continue on the
// old connection for up to the grace period, and new calls go through the balancer again.
//
// Thread-compatible: plain values and free functions.
#ifndef TIMBRE_SERVER_RPC_CONNECTION_OPTIONS_H_
#define TIMBRE_SERVER_RPC_CONNECTION_OPTIONS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpcpp/server_builder.h"

namespace timbre {

struct ConnectionOptions {
  // Largest request message accepted, in bytes; a larger one gets RESOURCE_EXHAUSTED.
  // Default 64 MiB (4096 v2 frames in float32 are 12.6 MB).
  int max_receive_message_bytes = 64 << 20;
  // Largest response message sent, in bytes; a call whose answer is larger fails with
  // RESOURCE_EXHAUSTED. Default 64 MiB (a Search with vectors returns k times the frames).
  int max_send_message_bytes = 64 << 20;
  // How often the server pings a client to check that the connection is alive, on connections
  // with calls in progress (an open BlendStream among them). Infinite disables the pings.
  // Default 60 s (gRPC's own default is 2 hours, longer than many NAT and load-balancer idle
  // timeouts).
  absl::Duration keepalive_time = absl::Seconds(60);
  // How long the server waits for a ping's answer before it closes the connection.
  // Default 20 s.
  absl::Duration keepalive_timeout = absl::Seconds(20);
  // Age after which the server asks the client to reconnect; gRPC adds +-10% jitter. Infinite
  // keeps connections for ever. Default infinite.
  absl::Duration max_connection_age = absl::InfiniteDuration();
  // How long calls in flight on a connection past its age may continue before the connection is
  // closed under them. Default infinite: a BlendStream session is never cut; its client moves
  // when it next opens a stream.
  absl::Duration max_connection_age_grace = absl::InfiniteDuration();
  // Most calls open at once on one connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS); a client
  // queues further calls until one ends. Bounds the streams, and the reactors and buffers behind
  // them, that one connection can hold. Default 100 (gRPC's own default is unlimited).
  int max_concurrent_streams = 100;
  // A connection without a call for this long is closed (HTTP/2 GOAWAY; a client reconnects on
  // its next call). Bounds the descriptors and memory held by idle connections. Infinite keeps
  // them. Default 30 minutes.
  absl::Duration max_connection_idle = absl::Minutes(30);
  // Largest header block (metadata) a request may carry, in bytes; a larger one fails the call
  // with RESOURCE_EXHAUSTED before any handler runs. Default 16 KiB (gRPC's default is 8 KiB;
  // a bearer token takes 100 bytes).
  int max_metadata_bytes = 16 << 10;
};

// Errors: INVALID_ARGUMENT naming the flag, for message or metadata limits below 1024 bytes,
// keepalive durations that are not positive, a maximum connection age or idle time that is not
// positive, a negative grace, or fewer than 1 concurrent stream.
absl::Status ValidateConnectionOptions(const ConnectionOptions& options);

// The gRPC channel arguments (name, value) that `options` set, durations in milliseconds.
// Infinite durations leave gRPC's default, which is infinite too.
std::vector<std::pair<std::string, int>> ConnectionChannelArguments(
    const ConnectionOptions& options);

// Sets the message limits and channel arguments of `options` on `builder`.
// REQUIRES: ValidateConnectionOptions(options) is OK.
void ApplyConnectionOptions(const ConnectionOptions& options, grpc::ServerBuilder& builder);

}  // namespace timbre

#endif  // TIMBRE_SERVER_RPC_CONNECTION_OPTIONS_H_
