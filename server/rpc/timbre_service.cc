#include "server/rpc/timbre_service.h"

#include <memory>
#include <optional>

#include "server/rpc/blend_stream_reactor.h"
#include "server/rpc/call_recorder.h"
#include "server/rpc/proto_convert.h"

namespace timbre {
namespace {

// Fills `response` with a speaker's status and records the call; returns its status.
grpc::Status AnswerSpeaker(const absl::StatusOr<SpeakerStatus>& status, CallRecorder& recorder,
                           timbre::v1::SpeakerInfo* response) {
  if (status.ok()) ToProto(*status, response);
  return recorder.Record(status.status(), 0);
}

}  // namespace

grpc::ServerUnaryReactor* TimbreService::Blend(grpc::CallbackServerContext* context,
                                               const timbre::v1::BlendRequest* request,
                                               timbre::v1::BlendResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto recorder = std::make_shared<CallRecorder>(metrics_, "Blend");
  recorder->set_speaker(request->speaker());
  absl::StatusOr<RetrievalCall> call =
      ToRetrievalCall(request->speaker(), request->frames(), request->options());
  if (!call.ok()) {
    reactor->Finish(recorder->Record(call.status(), 0));
    return reactor;
  }
  call->deadline = FromGrpcDeadline(context->deadline());
  const DType dtype = *FromProto(request->frames().dtype());
  const int64_t frames = call->frames.rows;
  retriever_->Blend(*std::move(call), [this, reactor, response, recorder, dtype,
                                       frames](absl::StatusOr<BlendResult> result) {
    if (!result.ok()) {
      reactor->Finish(recorder->Record(result.status(), frames));
      return;
    }
    ToProto(result->frames, dtype, response->mutable_frames());
    response->set_version(result->version);
    ToProto(result->timing, result->blend, response->mutable_timing());
    recorder->RecordStages(result->timing, result->blend);
    reactor->Finish(recorder->Record(absl::OkStatus(), frames));
  });
  return reactor;
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* TimbreService::BlendStream(
    grpc::CallbackServerContext* context) {
  return new BlendStreamReactor(retriever_, metrics_, stream_drain_,
                                FromGrpcDeadline(context->deadline()));
}

grpc::ServerUnaryReactor* TimbreService::Search(grpc::CallbackServerContext* context,
                                                const timbre::v1::SearchRequest* request,
                                                timbre::v1::SearchResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto recorder = std::make_shared<CallRecorder>(metrics_, "Search");
  recorder->set_speaker(request->speaker());
  absl::StatusOr<RetrievalCall> call =
      ToRetrievalCall(request->speaker(), request->frames(), request->options());
  if (!call.ok()) {
    reactor->Finish(recorder->Record(call.status(), 0));
    return reactor;
  }
  call->deadline = FromGrpcDeadline(context->deadline());
  const DType dtype = *FromProto(request->frames().dtype());
  const bool include_vectors = request->include_vectors();
  const int64_t frames = call->frames.rows;
  retriever_->Search(*std::move(call), [this, reactor, response, recorder, dtype, frames,
                                        include_vectors](absl::StatusOr<SearchResult> result) {
    if (!result.ok()) {
      reactor->Finish(recorder->Record(result.status(), frames));
      return;
    }
    response->set_num_frames(static_cast<uint32_t>(result->rows));
    response->set_k(static_cast<uint32_t>(result->k));
    response->mutable_ids()->Add(result->ids.begin(), result->ids.end());
    response->mutable_distances()->Add(result->scores.begin(), result->scores.end());
    response->set_version(result->snapshot->version);
    if (include_vectors) {
      const FaissIndex& index = *result->snapshot->index;
      FrameMatrix vectors;
      vectors.rows = static_cast<int64_t>(result->ids.size());
      vectors.dim = index.dim();
      vectors.values.assign(static_cast<size_t>(vectors.rows) * vectors.dim, 0.0f);
      for (int64_t i = 0; i < vectors.rows; ++i) {
        const int64_t id = result->ids[i];
        if (id < 0) continue;
        const StoredFloat* stored = index.StoredVector(id);
        std::copy(stored, stored + vectors.dim, vectors.row(i));
      }
      ToProto(vectors, dtype, response->mutable_vectors());
    }
    recorder->RecordStages(result->timing, /*blend=*/std::nullopt);
    reactor->Finish(recorder->Record(absl::OkStatus(), frames));
  });
  return reactor;
}

grpc::ServerUnaryReactor* TimbreService::ListSpeakers(
    grpc::CallbackServerContext* context, const timbre::v1::ListSpeakersRequest* request,
    timbre::v1::ListSpeakersResponse* response) {
  CallRecorder recorder(metrics_, "ListSpeakers");
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  // Before the first scan an empty list would read as "no speakers"; it is "not known yet".
  if (absl::Status ready = registry_->Ready(); !ready.ok()) {
    reactor->Finish(recorder.Record(ready, 0));
    return reactor;
  }
  for (const SpeakerStatus& status : registry_->List()) {
    ToProto(status, response->add_speakers());
  }
  reactor->Finish(recorder.Record(absl::OkStatus(), 0));
  return reactor;
}

grpc::ServerUnaryReactor* TimbreService::GetSpeaker(grpc::CallbackServerContext* context,
                                                    const timbre::v1::GetSpeakerRequest* request,
                                                    timbre::v1::SpeakerInfo* response) {
  CallRecorder recorder(metrics_, "GetSpeaker");
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(AnswerSpeaker(registry_->Get(request->speaker()), recorder, response));
  return reactor;
}

grpc::ServerUnaryReactor* TimbreService::LoadSpeaker(
    grpc::CallbackServerContext* context, const timbre::v1::LoadSpeakerRequest* request,
    timbre::v1::SpeakerInfo* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto recorder = std::make_shared<CallRecorder>(metrics_, "LoadSpeaker");
  registry_->Load(request->speaker(), request->warmup(),
                  [reactor, response, recorder](absl::StatusOr<SpeakerStatus> status) {
                    reactor->Finish(AnswerSpeaker(status, *recorder, response));
                  });
  return reactor;
}

grpc::ServerUnaryReactor* TimbreService::UnloadSpeaker(
    grpc::CallbackServerContext* context, const timbre::v1::UnloadSpeakerRequest* request,
    timbre::v1::SpeakerInfo* response) {
  CallRecorder recorder(metrics_, "UnloadSpeaker");
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(AnswerSpeaker(registry_->Unload(request->speaker()), recorder, response));
  return reactor;
}

}  // namespace timbre
