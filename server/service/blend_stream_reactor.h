// BlendStreamReactor: one real-time BlendStream session.
//
// The session reads a message, blends its block, writes the answer, and only then reads the
// next message, so answers leave in the order the blocks came and a session never has more than
// one block in the server. The first message must name the speaker; a later message may replace
// the options. Any error ends the session with a status naming the block; each block is
// recorded in the metrics as one BlendStream call.
//
// Thread-safe as gRPC requires: reactions are serialized by the protocol above (one operation
// outstanding at a time). Deletes itself in OnDone.
#ifndef TIMBRE_SERVER_SERVICE_BLEND_STREAM_REACTOR_H_
#define TIMBRE_SERVER_SERVICE_BLEND_STREAM_REACTOR_H_

#include <string>

#include "grpcpp/support/server_callback.h"
#include "server/core/retriever.h"
#include "server/service/call_recorder.h"
#include "server/service/server_metrics.h"
#include "timbre/v1/timbre.pb.h"

namespace timbre {

class BlendStreamReactor final
    : public grpc::ServerBidiReactor<timbre::v1::BlendStreamRequest,
                                     timbre::v1::BlendStreamResponse> {
 public:
  BlendStreamReactor(const Retriever* retriever, ServerMetrics* metrics);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  void FinishWith(const absl::Status& status);

  const Retriever* retriever_;
  CallRecorder recorder_;
  timbre::v1::BlendStreamRequest request_;
  timbre::v1::BlendStreamResponse response_;
  std::string speaker_;                  // set by the first message
  timbre::v1::RetrievalOptions options_; // the session's current options
  uint64_t block_index_ = 0;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_SERVICE_BLEND_STREAM_REACTOR_H_
