// TimbreClient: a small synchronous C++ client of the timbre.v1.Timbre service.
//
// Every call returns absl::Status / absl::StatusOr with the server's gRPC code and message.
// The channel is plain text by default; with TLS options it verifies the server's certificate,
// can present a client certificate (mTLS) and send a bearer token with every call.
//
// Thread-safe: calls may be made concurrently from several threads (they share one channel).
// A BlendSession is thread-compatible: one thread at a time.
#ifndef TIMBRE_CLIENT_TIMBRE_CLIENT_H_
#define TIMBRE_CLIENT_TIMBRE_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "timbre/v1/timbre.grpc.pb.h"

namespace timbre {

// Converts a gRPC status to absl (same code and message).
absl::Status FromGrpcStatus(const grpc::Status& status);

// A real-time blend session over one BlendStream call.
class BlendSession {
 public:
  ~BlendSession();
  // Sends one block and waits for its blended answer. `options`, when given, replace the
  // session's options from this block on. Errors: the stream's final status.
  absl::StatusOr<timbre::v1::BlendStreamResponse> Send(
      const timbre::v1::Frames& frames, const timbre::v1::RetrievalOptions* options = nullptr);
  // Half-closes the stream and returns its final status.
  absl::Status Close();

 private:
  friend class TimbreClient;
  BlendSession(std::unique_ptr<grpc::ClientContext> context,
               std::unique_ptr<grpc::ClientReaderWriter<timbre::v1::BlendStreamRequest,
                                                        timbre::v1::BlendStreamResponse>>
                   stream,
               std::string speaker, timbre::v1::RetrievalOptions options);

  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<
      grpc::ClientReaderWriter<timbre::v1::BlendStreamRequest, timbre::v1::BlendStreamResponse>>
      stream_;
  std::string speaker_;
  timbre::v1::RetrievalOptions options_;
  bool first_ = true;
  bool closed_ = false;
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
  };

  // Errors: INVALID_ARGUMENT for an empty target, a client certificate without its key, or a
  // token without TLS; NOT_FOUND for an unreadable TLS file. Does not connect until the first
  // call.
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
  // The channel, with this client's credentials, for other services on the same server.
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

 private:
  explicit TimbreClient(Options options, std::shared_ptr<grpc::Channel> channel);
  void SetDeadline(grpc::ClientContext& context) const;
  // One unary call of `method` with the client's deadline.
  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(
      grpc::Status (timbre::v1::Timbre::Stub::*method)(grpc::ClientContext*, const Request&,
                                                       Response*),
      const Request& request) const {
    grpc::ClientContext context;
    SetDeadline(context);
    Response response;
    absl::Status status = FromGrpcStatus((stub_.get()->*method)(&context, request, &response));
    if (!status.ok()) return status;
    return response;
  }

  const Options options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<timbre::v1::Timbre::Stub> stub_;
};

// A channel to `options.target` with the options' message limits. Errors: INVALID_ARGUMENT for
// an empty target. Does not connect until the first call.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const TimbreClient::Options& options);

// The first token of a token file: the first line that is neither blank nor a '#' comment,
// whitespace trimmed. Errors: NOT_FOUND for an unreadable file, INVALID_ARGUMENT for a file
// without a token.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// Frames message from packed bytes.
timbre::v1::Frames MakeFrames(timbre::v1::DType dtype, uint32_t num_frames, uint32_t dim,
                              std::string data);

}  // namespace timbre

#endif  // TIMBRE_CLIENT_TIMBRE_CLIENT_H_
