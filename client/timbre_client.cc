#include "timbre/timbre_client.h"

#include <chrono>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "server/io/posix_file.h"

namespace timbre {

namespace {

// Largest TLS or token file read, in bytes: a certificate chain is a few KB.
constexpr int64_t kMaxCredentialFileBytes = 1 << 20;

// The contents of the regular file `path` (ReadSmallFile). Errors: NOT_FOUND "cannot read <what>
// '<path>': <reason>" if it is missing, not a regular file or larger than
// kMaxCredentialFileBytes.
absl::StatusOr<std::string> ReadWholeFile(const std::string& what, const std::string& path) {
  absl::StatusOr<std::string> text = ReadSmallFile(path, kMaxCredentialFileBytes);
  if (!text.ok()) {
    return absl::NotFoundError(
        absl::StrCat("cannot read ", what, " '", path, "': ", text.status().message()));
  }
  return text;
}

// The channel credentials `options` ask for; sets the TLS name override in `arguments`.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeCredentials(
    const TimbreClient::Options& options, grpc::ChannelArguments& arguments) {
  const bool tls = options.tls || !options.tls_ca_file.empty() ||
                   !options.tls_cert_file.empty() || !options.tls_server_name.empty();
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together: give both or neither");
  }
  if (!tls) {
    if (!options.token.empty()) {
      return absl::InvalidArgumentError(
          "a bearer token needs TLS (--tls or --tls_ca): it would travel in plain text");
    }
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions ssl;
  for (auto [what, path, pem] :
       {std::make_tuple("--tls_ca", &options.tls_ca_file, &ssl.pem_root_certs),
        std::make_tuple("--tls_cert", &options.tls_cert_file, &ssl.pem_cert_chain),
        std::make_tuple("--tls_key", &options.tls_key_file, &ssl.pem_private_key)}) {
    if (path->empty()) continue;
    absl::StatusOr<std::string> text = ReadWholeFile(what, *path);
    if (!text.ok()) return text.status();
    *pem = *std::move(text);
  }
  if (!options.tls_server_name.empty()) {
    arguments.SetSslTargetNameOverride(options.tls_server_name);
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::SslCredentials(ssl);
  if (options.token.empty()) return credentials;
  return grpc::CompositeChannelCredentials(credentials,
                                           grpc::AccessTokenCredentials(options.token));
}

}  // namespace

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadWholeFile("--token_file", path);
  if (!text.ok()) return text.status();
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty() && !absl::StartsWith(line, "#")) return std::string(line);
  }
  return absl::InvalidArgumentError(absl::StrCat("--token_file '", path, "' holds no token"));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

timbre::v1::Frames MakeFrames(timbre::v1::DType dtype, uint32_t num_frames, uint32_t dim,
                              std::string data) {
  timbre::v1::Frames frames;
  frames.set_dtype(dtype);
  frames.set_num_frames(num_frames);
  frames.set_dim(dim);
  frames.set_data(std::move(data));
  return frames;
}

BlendSession::BlendSession(const TimbreClient* client, std::string speaker,
                           timbre::v1::RetrievalOptions options, int retries)
    : client_(client),
      speaker_(std::move(speaker)),
      retries_(retries),
      options_(std::move(options)) {
  Open();
}

BlendSession::~BlendSession() {
  if (!closed_) Close().IgnoreError();
}

void BlendSession::Open() {
  context_ = std::make_unique<grpc::ClientContext>();
  context_->AddMetadata(kSpeakerHeader, speaker_);
  stream_ = client_->stub().BlendStream(context_.get());
  first_on_stream_ = true;
}

absl::Status BlendSession::EndStream() {
  stream_->WritesDone();
  absl::Status status = FromGrpcStatus(stream_->Finish());
  if (status.ok()) status = absl::UnavailableError("the stream ended without an answer");
  // A proxy whose replica died mid-stream ends the client's stream without a gRPC status
  // (HAProxy: UNKNOWN "No status received") or resets it (nginx: INTERNAL "Received RST_STREAM
  // with error code 2"; a replica whose shutdown grace ran out while the stream was open: CANCELLED
  // "Received RST_STREAM with error code 8"); timbre's servers never end a stream either way
  // while they serve, and a cancel of the client's own reads "Cancelled". All are a reset of the
  // stream by the other side: it can go on elsewhere.
  const bool no_status =
      status.code() == absl::StatusCode::kUnknown && status.message() == "No status received";
  const bool reset = (status.code() == absl::StatusCode::kInternal ||
                      status.code() == absl::StatusCode::kCancelled) &&
                     absl::StartsWith(status.message(), "Received RST_STREAM");
  if (no_status || reset) {
    status = absl::UnavailableError(absl::StrCat(
        "the stream was cut (", status.message(), "): the replica behind the proxy is gone"));
  }
  return status;
}

absl::StatusOr<timbre::v1::BlendStreamResponse> BlendSession::Send(
    const timbre::v1::Frames& frames, const timbre::v1::RetrievalOptions* options) {
  if (closed_) return absl::FailedPreconditionError("the session is closed");
  if (options != nullptr) options_ = *options;
  absl::Duration backoff = absl::Milliseconds(50);
  for (int reopened = 0;; ++reopened) {
    timbre::v1::BlendStreamRequest request;
    if (first_on_stream_) {
      request.set_speaker(speaker_);
      *request.mutable_options() = options_;
    } else if (options != nullptr) {
      *request.mutable_options() = *options;
    }
    *request.mutable_frames() = frames;
    first_on_stream_ = false;
    timbre::v1::BlendStreamResponse response;
    if (stream_->Write(request) && stream_->Read(&response)) {
      if (reopened > 0) ++blocks_after_reopen_;
      return response;
    }
    absl::Status status = EndStream();
    if (status.code() != absl::StatusCode::kUnavailable || reopened >= retries_) {
      closed_ = true;
      return status;
    }
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(1));
    Open();
    ++reopens_;
  }
}

absl::Status BlendSession::Close() {
  if (closed_) return absl::OkStatus();
  closed_ = true;
  stream_->WritesDone();
  return FromGrpcStatus(stream_->Finish());
}

std::string RetryServiceConfig(int retries) {
  if (retries <= 0) return "";
  return absl::StrCat(
      R"({"methodConfig":[{"name":[{"service":"timbre.v1.Timbre"},)",
      R"({"service":"timbre.v1.IndexBuilder","method":"GetJob"},)",
      R"({"service":"timbre.v1.IndexBuilder","method":"ListJobs"},)",
      R"({"service":"timbre.v1.IndexBuilder","method":"GetFeatureSet"},)",
      R"({"service":"timbre.v1.IndexBuilder","method":"ListFeatureSets"},)",
      R"({"service":"timbre.v1.IndexBuilder","method":"WatchJob"}],)",
      R"("retryPolicy":{"maxAttempts":)", retries + 1,
      R"(,"initialBackoff":"0.05s","maxBackoff":"1s","backoffMultiplier":2,)",
      R"("retryableStatusCodes":["UNAVAILABLE"]}}]})");
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const TimbreClient::Options& options) {
  if (options.target.empty()) return absl::InvalidArgumentError("--server is empty");
  if (options.retries < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--retries is ", options.retries, "; use 0 (no retries) or more"));
  }
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(options.max_message_bytes);
  arguments.SetMaxSendMessageSize(options.max_message_bytes);
  arguments.SetInt(GRPC_ARG_ENABLE_RETRIES, options.retries > 0 ? 1 : 0);
  if (options.retries > 0) arguments.SetServiceConfigJSON(RetryServiceConfig(options.retries));
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeCredentials(options, arguments);
  if (!credentials.ok()) return credentials.status();
  return grpc::CreateCustomChannel(options.target, *credentials, arguments);
}

absl::StatusOr<std::unique_ptr<TimbreClient>> TimbreClient::Create(Options options) {
  auto channel = MakeChannel(options);
  if (!channel.ok()) return channel.status();
  return std::unique_ptr<TimbreClient>(new TimbreClient(std::move(options), *std::move(channel)));
}

TimbreClient::TimbreClient(Options options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(timbre::v1::Timbre::NewStub(channel_)) {}

void TimbreClient::SetDeadline(grpc::ClientContext& context) const {
  context.set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoMilliseconds(options_.timeout));
}

absl::StatusOr<timbre::v1::BlendResponse> TimbreClient::Blend(
    const timbre::v1::BlendRequest& request) const {
  return Call(&timbre::v1::Timbre::Stub::Blend, request, request.speaker());
}

absl::StatusOr<timbre::v1::SearchResponse> TimbreClient::Search(
    const timbre::v1::SearchRequest& request) const {
  return Call(&timbre::v1::Timbre::Stub::Search, request, request.speaker());
}

absl::StatusOr<timbre::v1::ListSpeakersResponse> TimbreClient::ListSpeakers() const {
  return Call(&timbre::v1::Timbre::Stub::ListSpeakers, timbre::v1::ListSpeakersRequest(), "");
}

absl::StatusOr<timbre::v1::SpeakerInfo> TimbreClient::GetSpeaker(
    const std::string& speaker) const {
  timbre::v1::GetSpeakerRequest request;
  request.set_speaker(speaker);
  return Call(&timbre::v1::Timbre::Stub::GetSpeaker, request, speaker);
}

absl::StatusOr<timbre::v1::SpeakerInfo> TimbreClient::LoadSpeaker(const std::string& speaker,
                                                                 bool warmup) const {
  timbre::v1::LoadSpeakerRequest request;
  request.set_speaker(speaker);
  request.set_warmup(warmup);
  return Call(&timbre::v1::Timbre::Stub::LoadSpeaker, request, speaker);
}

absl::StatusOr<timbre::v1::SpeakerInfo> TimbreClient::UnloadSpeaker(
    const std::string& speaker) const {
  timbre::v1::UnloadSpeakerRequest request;
  request.set_speaker(speaker);
  return Call(&timbre::v1::Timbre::Stub::UnloadSpeaker, request, speaker);
}

std::unique_ptr<BlendSession> TimbreClient::OpenSession(
    const std::string& speaker, const timbre::v1::RetrievalOptions& options) const {
  return std::unique_ptr<BlendSession>(new BlendSession(this, speaker, options, options_.retries));
}

}  // namespace timbre
