// TimbreService: the timbre.v1.Timbre gRPC service, a thin stateless adapter over the core.
//
// Each handler converts the request (proto_convert.h), hands it to the core's Retriever or
// SpeakerRegistry, converts the answer back and records the call's metrics and log line once.
// Handlers use gRPC's callback API and never block: searches run on the SearchScheduler's
// workers, which finish the RPC.
//
// Thread-safe.
#ifndef TIMBRE_SERVER_RPC_TIMBRE_SERVICE_H_
#define TIMBRE_SERVER_RPC_TIMBRE_SERVICE_H_

#include "server/metrics/server_metrics.h"
#include "server/rpc/stream_drain.h"
#include "server/serving/retriever.h"
#include "server/serving/speaker_registry.h"
#include "timbre/v1/timbre.grpc.pb.h"

namespace timbre {

// timbre.v1.Timbre with every method on gRPC's callback API; BlendStream reads and writes raw
// bytes (see BlendStreamReactor).
using TimbreServiceBase = timbre::v1::Timbre::WithCallbackMethod_Blend<
    timbre::v1::Timbre::WithRawCallbackMethod_BlendStream<
        timbre::v1::Timbre::WithCallbackMethod_Search<
            timbre::v1::Timbre::WithCallbackMethod_ListSpeakers<
                timbre::v1::Timbre::WithCallbackMethod_GetSpeaker<
                    timbre::v1::Timbre::WithCallbackMethod_LoadSpeaker<
                        timbre::v1::Timbre::WithCallbackMethod_UnloadSpeaker<
                            timbre::v1::Timbre::Service>>>>>>>;

class TimbreService final : public TimbreServiceBase {
 public:
  // All collaborators must outlive the service. BlendStream sessions register with
  // `stream_drain`, which ends them when the server drains.
  TimbreService(const Retriever* retriever, SpeakerRegistry* registry, ServerMetrics* metrics,
                StreamDrain* stream_drain)
      : retriever_(retriever),
        registry_(registry),
        metrics_(metrics),
        stream_drain_(stream_drain) {}

  grpc::ServerUnaryReactor* Blend(grpc::CallbackServerContext* context,
                                  const timbre::v1::BlendRequest* request,
                                  timbre::v1::BlendResponse* response) override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* BlendStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Search(grpc::CallbackServerContext* context,
                                   const timbre::v1::SearchRequest* request,
                                   timbre::v1::SearchResponse* response) override;
  grpc::ServerUnaryReactor* ListSpeakers(grpc::CallbackServerContext* context,
                                         const timbre::v1::ListSpeakersRequest* request,
                                         timbre::v1::ListSpeakersResponse* response) override;
  grpc::ServerUnaryReactor* GetSpeaker(grpc::CallbackServerContext* context,
                                       const timbre::v1::GetSpeakerRequest* request,
                                       timbre::v1::SpeakerInfo* response) override;
  // Admin: answered when the load has finished (on the registry's loader thread).
  grpc::ServerUnaryReactor* LoadSpeaker(grpc::CallbackServerContext* context,
                                        const timbre::v1::LoadSpeakerRequest* request,
                                        timbre::v1::SpeakerInfo* response) override;
  grpc::ServerUnaryReactor* UnloadSpeaker(grpc::CallbackServerContext* context,
                                          const timbre::v1::UnloadSpeakerRequest* request,
                                          timbre::v1::SpeakerInfo* response) override;

 private:
  const Retriever* retriever_;
  SpeakerRegistry* registry_;
  ServerMetrics* metrics_;
  StreamDrain* stream_drain_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_RPC_TIMBRE_SERVICE_H_
