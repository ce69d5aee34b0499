#include "client/timbre_client.h"

#include <chrono>

namespace timbre {

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

BlendSession::BlendSession(
    std::unique_ptr<grpc::ClientContext> context,
    std::unique_ptr<grpc::ClientReaderWriter<timbre::v1::BlendStreamRequest,
                                             timbre::v1::BlendStreamResponse>>
        stream,
    std::string speaker, timbre::v1::RetrievalOptions options)
    : context_(std::move(context)),
      stream_(std::move(stream)),
      speaker_(std::move(speaker)),
      options_(std::move(options)) {}

BlendSession::~BlendSession() {
  if (!closed_) Close().IgnoreError();
}

absl::StatusOr<timbre::v1::BlendStreamResponse> BlendSession::Send(
    const timbre::v1::Frames& frames, const timbre::v1::RetrievalOptions* options) {
  if (closed_) return absl::FailedPreconditionError("the session is closed");
  timbre::v1::BlendStreamRequest request;
  if (first_) {
    request.set_speaker(speaker_);
    *request.mutable_options() = options != nullptr ? *options : options_;
    first_ = false;
  } else if (options != nullptr) {
    *request.mutable_options() = *options;
  }
  *request.mutable_frames() = frames;
  timbre::v1::BlendStreamResponse response;
  if (!stream_->Write(request) || !stream_->Read(&response)) {
    closed_ = true;
    stream_->WritesDone();
    absl::Status status = FromGrpcStatus(stream_->Finish());
    if (status.ok()) status = absl::UnavailableError("the stream ended without an answer");
    return status;
  }
  return response;
}

absl::Status BlendSession::Close() {
  if (closed_) return absl::OkStatus();
  closed_ = true;
  stream_->WritesDone();
  return FromGrpcStatus(stream_->Finish());
}

absl::StatusOr<std::unique_ptr<TimbreClient>> TimbreClient::Create(Options options) {
  if (options.target.empty()) return absl::InvalidArgumentError("--server is empty");
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(options.max_message_bytes);
  arguments.SetMaxSendMessageSize(options.max_message_bytes);
  auto channel = grpc::CreateCustomChannel(options.target, grpc::InsecureChannelCredentials(),
                                           arguments);
  return std::unique_ptr<TimbreClient>(new TimbreClient(std::move(options), std::move(channel)));
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
  return Call(&timbre::v1::Timbre::Stub::Blend, request);
}

absl::StatusOr<timbre::v1::SearchResponse> TimbreClient::Search(
    const timbre::v1::SearchRequest& request) const {
  return Call(&timbre::v1::Timbre::Stub::Search, request);
}

absl::StatusOr<timbre::v1::ListSpeakersResponse> TimbreClient::ListSpeakers() const {
  return Call(&timbre::v1::Timbre::Stub::ListSpeakers, timbre::v1::ListSpeakersRequest());
}

absl::StatusOr<timbre::v1::SpeakerInfo> TimbreClient::GetSpeaker(
    const std::string& speaker) const {
  timbre::v1::GetSpeakerRequest request;
  request.set_speaker(speaker);
  return Call(&timbre::v1::Timbre::Stub::GetSpeaker, request);
}

absl::StatusOr<timbre::v1::SpeakerInfo> TimbreClient::LoadSpeaker(const std::string& speaker,
                                                                 bool warmup) const {
  timbre::v1::LoadSpeakerRequest request;
  request.set_speaker(speaker);
  request.set_warmup(warmup);
  return Call(&timbre::v1::Timbre::Stub::LoadSpeaker, request);
}

absl::StatusOr<timbre::v1::SpeakerInfo> TimbreClient::UnloadSpeaker(
    const std::string& speaker) const {
  timbre::v1::UnloadSpeakerRequest request;
  request.set_speaker(speaker);
  return Call(&timbre::v1::Timbre::Stub::UnloadSpeaker, request);
}

std::unique_ptr<BlendSession> TimbreClient::OpenSession(
    const std::string& speaker, const timbre::v1::RetrievalOptions& options) const {
  auto context = std::make_unique<grpc::ClientContext>();
  auto stream = stub_->BlendStream(context.get());
  return std::unique_ptr<BlendSession>(
      new BlendSession(std::move(context), std::move(stream), speaker, options));
}

}  // namespace timbre
