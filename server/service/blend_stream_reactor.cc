#include "server/service/blend_stream_reactor.h"

#include "absl/strings/str_cat.h"
#include "server/service/grpc_status.h"
#include "server/service/proto_convert.h"

namespace timbre {

BlendStreamReactor::BlendStreamReactor(const Retriever* retriever, ServerMetrics* metrics)
    : retriever_(retriever), recorder_(metrics, "BlendStream") {
  StartRead(&request_);
}

void BlendStreamReactor::FinishWith(const absl::Status& status) {
  Finish(recorder_.Record(
      ToGrpcStatus(absl::Status(status.code(), absl::StrCat("block ", block_index_, ": ",
                                                            status.message()))),
      0));
}

void BlendStreamReactor::OnReadDone(bool ok) {
  if (!ok) {  // the client finished sending (or the call ended)
    Finish(grpc::Status::OK);
    return;
  }
  recorder_.Restart();
  if (speaker_.empty()) {
    if (request_.speaker().empty()) {
      FinishWith(absl::InvalidArgumentError(
          "the first message of a BlendStream must name the speaker"));
      return;
    }
    speaker_ = request_.speaker();
    recorder_.set_speaker(speaker_);
  } else if (!request_.speaker().empty() && request_.speaker() != speaker_) {
    FinishWith(absl::InvalidArgumentError(absl::StrCat(
        "the session is for speaker '", speaker_, "'; a message names '", request_.speaker(),
        "' (open a new stream to change speaker)")));
    return;
  }
  if (request_.has_options()) options_ = request_.options();
  if (!request_.has_frames()) {  // options only: nothing to answer
    StartRead(&request_);
    return;
  }
  absl::StatusOr<RetrievalCall> call = ToRetrievalCall(speaker_, request_.frames(), options_);
  if (!call.ok()) {
    FinishWith(call.status());
    return;
  }
  const DType dtype = *FromProto(request_.frames().dtype());
  const int64_t frames = call->frames.rows;
  retriever_->Blend(*std::move(call), [this, dtype, frames](absl::StatusOr<BlendResult> result) {
    if (!result.ok()) {
      FinishWith(result.status());
      return;
    }
    response_.Clear();
    ToProto(result->frames, dtype, response_.mutable_frames());
    response_.set_block_index(block_index_);
    response_.set_version(result->version);
    ToProto(result->timing, result->blend, response_.mutable_timing());
    recorder_.RecordStages(result->timing, result->blend);
    recorder_.Record(grpc::Status::OK, frames);
    StartWrite(&response_);
  });
}

void BlendStreamReactor::OnWriteDone(bool ok) {
  if (!ok) {
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
    return;
  }
  ++block_index_;
  StartRead(&request_);
}

}  // namespace timbre
