// TimbreClient: a small synchronous C++ client of the timbre.v1.Timbre service.
//
// Every call returns absl::Status / absl::StatusOr with the server's gRPC code and message.
// The channel is plain text by default; with TLS options it verifies the server's certificate,
// can present a client certificate (mTLS) and send a bearer token with every call.
//
// Cluster contract (shared with every timbre client):
// - every call about one speaker (Blend, BlendStream, Search, GetSpeaker, LoadSpeaker,
//   UnloadSpeaker) carries the gRPC metadata `x-timbre-speaker: <name>`, so that a load balancer
//   can hash it and send a speaker's calls to one replica; other calls carry none;
// - calls that fail with UNAVAILABLE (replica gone, connection reset, draining) are retried by
//   gRPC's retry policy, set in the channel's service config (see RetryServiceConfig);
// - a BlendSession whose stream ends with UNAVAILABLE reopens it and sends again the block that
//   was not answered, so no answered block is lost and none is answered twice.
//
// Thread-safe: calls may be made concurrently from several threads (they share one channel).
// A BlendSession is thread-compatible: one thread at a time.
#ifndef TIMBRE_CLIENT_TIMBRE_CLIENT_H_
#define TIMBRE_CLIENT_TIMBRE_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "timbre/v1/timbre.grpc.pb.h"

namespace timbre {

class TimbreClient;

// The metadata key that names the speaker of a call.
inline constexpr char kSpeakerHeader[] = "x-timbre-speaker";

// Converts a gRPC status to absl (same code and message).
absl::Status FromGrpcStatus(const grpc::Status& status);

// A real-time blend session over BlendStream calls: one stream while it lasts, a new one when it
// ends with UNAVAILABLE (the server drains, the replica is gone, the connection is reset).
class BlendSession {
 public:
  ~BlendSession();
  // Sends one block and waits for its blended answer. `options`, when given, replace the
  // session's options from this block on. When the stream ends with UNAVAILABLE (or is cut by a
  // proxy whose replica died: no gRPC status, or RST_STREAM; reported as UNAVAILABLE) before the
  // answer, the session opens a new stream (after 0.05 s, doubling up to 1 s) and sends the
  // block again, at most `retries` times in a row without an answer between them. Errors: the
  // stream's final status (UNAVAILABLE once the reopenings are spent); any other status ends
  // the session; FAILED_PRECONDITION after Close or an error.
  absl::StatusOr<timbre::v1::BlendStreamResponse> Send(
      const timbre::v1::Frames& frames, const timbre::v1::RetrievalOptions* options = nullptr);
  // Half-closes the stream and returns its final status.
  absl::Status Close();
  // Streams reopened so far, and the answered blocks that needed a reopened stream.
  int64_t reopens() const { return reopens_; }
  int64_t blocks_after_reopen() const { return blocks_after_reopen_; }

 private:
  friend class TimbreClient;
  using Stream =
      grpc::ClientReaderWriter<timbre::v1::BlendStreamRequest, timbre::v1::BlendStreamResponse>;
  BlendSession(const TimbreClient* client, std::string speaker,
               timbre::v1::RetrievalOptions options, int retries);
  void Open();
  // Ends the current stream and returns its status (UNAVAILABLE if it ended cleanly).
  absl::Status EndStream();

  const TimbreClient* const client_;  // not owned; outlives the session
  const std::string speaker_;
  const int retries_;
  timbre::v1::RetrievalOptions options_;
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<Stream> stream_;
  bool first_on_stream_ = true;
  bool closed_ = false;
  int64_t reopens_ = 0;
  int64_t blocks_after_reopen_ = 0;
};

class TimbreClient {
 public:
  struct Options {
    // Server address, "host:port". Required.
    std::string target;
    // Deadline of each unary call. Default 30 s.
    absl::Duration timeout = absl::Seconds(30);
    // Largest message sent or received, in bytes. Default 64 MiB.
    int max_message_bytes = 64 << 20;
    // Use TLS. Implied by any tls_* field below. Default off.
    bool tls = false;
    // PEM file of the CA certificates the server's certificate must chain to. Default: the
    // system's CAs.
    std::string tls_ca_file;
    // PEM files of this client's certificate chain and private key, for a server that requires
    // client certificates. Both or neither. Default neither.
    std::string tls_cert_file;
    std::string tls_key_file;
    // The name the server's certificate must carry when it differs from the target's host (for
    // example when connecting by IP address). Default: the target's host.
    std::string tls_server_name;
    // Bearer token sent with every call as "authorization: Bearer <token>". Needs TLS.
    // Default: none.
    std::string token;
    // Retries of a call that fails with UNAVAILABLE, with backoff from 0.05 s doubling up to 1 s
    // (gRPC's retry policy: unary calls of timbre.v1.Timbre and the read-only calls of
    // timbre.v1.IndexBuilder, at most 4 since gRPC caps attempts at 5), and reopenings in a row
    // of a BlendSession's stream. 0 disables both. Default 4.
    int retries = 4;
  };

  // Errors: INVALID_ARGUMENT for an empty target, a client certificate without its key, a
  // token without TLS, or negative retries; NOT_FOUND for an unreadable TLS file (missing, not
  // a regular file, or over 1 MiB). Does not connect until the first call.
  static absl::StatusOr<std::unique_ptr<TimbreClient>> Create(Options options);

  absl::StatusOr<timbre::v1::BlendResponse> Blend(const timbre::v1::BlendRequest& request) const;
  absl::StatusOr<timbre::v1::SearchResponse> Search(
      const timbre::v1::SearchRequest& request) const;
  absl::StatusOr<timbre::v1::ListSpeakersResponse> ListSpeakers() const;
  absl::StatusOr<timbre::v1::SpeakerInfo> GetSpeaker(const std::string& speaker) const;
  // Admin: loads `speaker` now, warmed up if `warmup`; answers once it is loaded.
  absl::StatusOr<timbre::v1::SpeakerInfo> LoadSpeaker(const std::string& speaker,
                                                      bool warmup) const;
  // Admin: unloads `speaker` from the server's memory; its next call loads it again.
  absl::StatusOr<timbre::v1::SpeakerInfo> UnloadSpeaker(const std::string& speaker) const;

  // Opens a BlendStream for `speaker`; the speaker and options travel with the first block.
  std::unique_ptr<BlendSession> OpenSession(const std::string& speaker,
                                            const timbre::v1::RetrievalOptions& options) const;

  timbre::v1::Timbre::Stub& stub() const { return *stub_; }
  const Options& options() const { return options_; }
  // The channel, with this client's credentials, for other services on the same server.
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

 private:
  explicit TimbreClient(Options options, std::shared_ptr<grpc::Channel> channel);
  void SetDeadline(grpc::ClientContext& context) const;
  // One unary call of `method` with the client's deadline, about `speaker` unless it is empty.
  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(
      grpc::Status (timbre::v1::Timbre::Stub::*method)(grpc::ClientContext*, const Request&,
                                                       Response*),
      const Request& request, const std::string& speaker) const {
    grpc::ClientContext context;
    SetDeadline(context);
    if (!speaker.empty()) context.AddMetadata(kSpeakerHeader, speaker);
    Response response;
    absl::Status status = FromGrpcStatus((stub_.get()->*method)(&context, request, &response));
    if (!status.ok()) return status;
    return response;
  }

  const Options options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<timbre::v1::Timbre::Stub> stub_;
};

// The service config of a channel with `retries` retries: gRPC's retry policy on UNAVAILABLE
// for every method of timbre.v1.Timbre and GetJob, ListJobs, GetFeatureSet, ListFeatureSets and
// WatchJob of timbre.v1.IndexBuilder, maxAttempts retries + 1 (gRPC caps it at 5), backoff
// 0.05 s doubling up to 1 s. "" for retries <= 0 (no retry policy at all).
std::string RetryServiceConfig(int retries);

// A channel to `options.target` with the options' message limits and retry policy. Errors:
// INVALID_ARGUMENT for an empty target or negative retries. Does not connect until the first
// call.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const TimbreClient::Options& options);

// The first token of a token file: the first line that is neither blank nor a '#' comment,
// whitespace trimmed. Errors: NOT_FOUND naming the file when it cannot be read (missing, not a
// regular file, or over 1 MiB), INVALID_ARGUMENT for a file without a token.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// Frames message from packed bytes.
timbre::v1::Frames MakeFrames(timbre::v1::DType dtype, uint32_t num_frames, uint32_t dim,
                              std::string data);

}  // namespace timbre

#endif  // TIMBRE_CLIENT_TIMBRE_CLIENT_H_
