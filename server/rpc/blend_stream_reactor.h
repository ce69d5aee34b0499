// BlendStreamReactor: one real-time BlendStream session.
//
// The session reads a message (raw bytes, decoded here so that a message that is not a valid
// BlendStreamRequest ends the stream with INVALID_ARGUMENT naming its block), blends its block,
// writes the answer, and only then reads the next message, so answers leave in the order the blocks
// came and a session never has more than one block in the server. The first message must name the
// speaker; a later message may replace the options. Any error ends the session with a status naming
// the block; each block is recorded in the metrics as one BlendStream call. Every block carries the
// stream's deadline into the core, so a block queued past it is not searched.
//
// Drain: the session registers with the server's StreamDrain. When the server drains, a session
// waiting for its next block ends at once, and a session with a block in the server ends right
// after writing that block's answer; both end with UNAVAILABLE naming the drain, so the client
// reopens its stream (on another server) and loses no answered block.
//
// Thread-safe: gRPC's reactions, the search worker that finishes a block and the draining thread
// meet under one mutex. Deletes itself in OnDone.
#ifndef TIMBRE_SERVER_RPC_BLEND_STREAM_REACTOR_H_
#define TIMBRE_SERVER_RPC_BLEND_STREAM_REACTOR_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/server_callback.h"
#include "server/metrics/server_metrics.h"
#include "server/rpc/call_recorder.h"
#include "server/rpc/stream_drain.h"
#include "server/serving/retriever.h"
#include "timbre/v1/timbre.pb.h"

namespace timbre {

class BlendStreamReactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                                 public DrainableStream {
 public:
  // All collaborators must outlive the session. `deadline` is the stream's.
  BlendStreamReactor(const Retriever* retriever, ServerMetrics* metrics, StreamDrain* drain,
                     absl::Time deadline);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override;
  void EndAfterCurrentBlock() override;

 private:
  enum class State {
    kReading,   // waiting for the next message
    kBlock,     // a block is being blended or its answer written
    kFinished,  // Finish has been called
  };

  // Blends the block in request_. Runs without the lock: the core may answer inline.
  void StartBlock(RetrievalCall call, DType dtype);
  void OnBlended(absl::StatusOr<BlendResult> result, DType dtype, int64_t frames);
  // Records a failed block and finishes the stream with its status. Returns the status to
  // finish with; the caller calls Finish.
  grpc::Status FailBlock(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Finishes the stream. REQUIRES: state_ is not kFinished. Only for callers that keep the
  // session alive until they return (a reaction, or EndAfterCurrentBlock).
  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  grpc::Status DrainedStatus() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const Retriever* const retriever_;
  StreamDrain* const drain_;
  const absl::Time deadline_;
  absl::Mutex mutex_;
  State state_ ABSL_GUARDED_BY(mutex_) = State::kReading;
  bool draining_ ABSL_GUARDED_BY(mutex_) = false;
  CallRecorder recorder_ ABSL_GUARDED_BY(mutex_);
  grpc::ByteBuffer request_bytes_ ABSL_GUARDED_BY(mutex_);   // the message being read
  grpc::ByteBuffer response_bytes_ ABSL_GUARDED_BY(mutex_);  // the answer being written
  timbre::v1::BlendStreamRequest request_ ABSL_GUARDED_BY(mutex_);
  timbre::v1::BlendStreamResponse response_ ABSL_GUARDED_BY(mutex_);
  std::string speaker_ ABSL_GUARDED_BY(mutex_);                   // set by the first message
  timbre::v1::RetrievalOptions options_ ABSL_GUARDED_BY(mutex_);  // the session's options
  uint64_t block_index_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_RPC_BLEND_STREAM_REACTOR_H_
