#include "server/rpc/blend_stream_reactor.h"

#include "absl/strings/str_cat.h"
#include "server/rpc/proto_convert.h"
#include "server/rpc/raw_message.h"
#include "server/status/rejection.h"

namespace timbre {

// Lifetime: gRPC deletes the session (OnDone) only after every reaction has returned and Finish
// has been called. A search worker (OnBlended) is not a reaction, so it calls Finish last, after
// releasing the lock; EndAfterCurrentBlock is covered by StreamDrain, which keeps OnDone's Remove
// waiting until it returns.

BlendStreamReactor::BlendStreamReactor(const Retriever* retriever, ServerMetrics* metrics,
                                       StreamDrain* drain, absl::Time deadline)
    : retriever_(retriever), drain_(drain), deadline_(deadline), recorder_(metrics, "BlendStream") {
  {
    absl::MutexLock lock(&mutex_);
    StartRead(&request_bytes_);
  }
  if (!drain_->Add(this)) EndAfterCurrentBlock();
}

void BlendStreamReactor::OnDone() {
  drain_->Remove(this);
  delete this;
}

grpc::Status BlendStreamReactor::DrainedStatus() const {
  return grpc::Status(
      grpc::StatusCode::UNAVAILABLE,
      absl::StrCat("the server is shutting down: the stream ended after ", block_index_,
                   " answered blocks; open a new stream to continue"));
}

void BlendStreamReactor::FinishLocked(const grpc::Status& status) {
  state_ = State::kFinished;
  Finish(status);
}

grpc::Status BlendStreamReactor::FailBlock(const absl::Status& status) {
  state_ = State::kFinished;
  return recorder_.Record(WithMessagePrefix(absl::StrCat("block ", block_index_, ": "), status), 0);
}

void BlendStreamReactor::EndAfterCurrentBlock() {
  absl::MutexLock lock(&mutex_);
  draining_ = true;
  if (state_ == State::kReading) FinishLocked(DrainedStatus());
}

void BlendStreamReactor::OnReadDone(bool ok) {
  absl::StatusOr<RetrievalCall> call;
  DType dtype = DType::kFloat32;
  {
    absl::MutexLock lock(&mutex_);
    // Ended by a drain while this read was pending.
    if (state_ == State::kFinished) return;
    if (!ok) {  // the client finished sending (or the call ended)
      FinishLocked(grpc::Status::OK);
      return;
    }
    recorder_.Restart();
    if (absl::Status decoded = DecodeMessage(request_bytes_, &request_); !decoded.ok()) {
      Finish(FailBlock(decoded));
      return;
    }
    if (speaker_.empty()) {
      if (request_.speaker().empty()) {
        Finish(FailBlock(absl::InvalidArgumentError(
            "the first message of a BlendStream must name the speaker")));
        return;
      }
      speaker_ = request_.speaker();
      recorder_.set_speaker(speaker_);
    } else if (!request_.speaker().empty() && request_.speaker() != speaker_) {
      Finish(FailBlock(absl::InvalidArgumentError(
          absl::StrCat("the session is for speaker '", speaker_, "'; a message names '",
                       request_.speaker(), "' (open a new stream to change speaker)"))));
      return;
    }
    if (request_.has_options()) options_ = request_.options();
    if (!request_.has_frames()) {  // options only: nothing to answer
      StartRead(&request_bytes_);
      return;
    }
    call = ToRetrievalCall(speaker_, request_.frames(), options_);
    if (!call.ok()) {
      Finish(FailBlock(call.status()));
      return;
    }
    call->deadline = deadline_;
    dtype = *FromProto(request_.frames().dtype());
    state_ = State::kBlock;
  }
  StartBlock(*std::move(call), dtype);
}

void BlendStreamReactor::StartBlock(RetrievalCall call, DType dtype) {
  const int64_t frames = call.frames.rows;
  retriever_->Blend(std::move(call), [this, dtype, frames](absl::StatusOr<BlendResult> result) {
    OnBlended(std::move(result), dtype, frames);
  });
}

void BlendStreamReactor::OnBlended(absl::StatusOr<BlendResult> result, DType dtype,
                                   int64_t frames) {
  grpc::Status failed;
  {
    absl::MutexLock lock(&mutex_);
    if (result.ok()) {
      response_.Clear();
      ToProto(result->frames, dtype, response_.mutable_frames());
      response_.set_block_index(block_index_);
      response_.set_version(result->version);
      ToProto(result->timing, result->blend, response_.mutable_timing());
      if (absl::Status encoded = EncodeMessage(response_, &response_bytes_); !encoded.ok()) {
        failed = FailBlock(encoded);
      } else {
        recorder_.RecordStages(result->timing, result->blend);
        recorder_.Record(absl::OkStatus(), frames);
        StartWrite(&response_bytes_);  // the pending write keeps the session alive past the unlock
        return;
      }
    } else {
      failed = FailBlock(result.status());
    }
  }
  Finish(failed);  // the last use of this session on this thread
}

void BlendStreamReactor::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mutex_);
  if (!ok) {
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
    return;
  }
  ++block_index_;
  if (draining_) {
    FinishLocked(DrainedStatus());
    return;
  }
  state_ = State::kReading;
  StartRead(&request_bytes_);
}

}  // namespace timbre
