// StreamDrain: the open streaming sessions of a server, so that a drain can end every one of them
// cleanly after the block it is on.
//
// A session registers when it opens (Add) and leaves when it is done (Remove). DrainAll() marks
// the server as draining and asks every open session to end after its current block; a session
// that opens after that is told by Add, and ends at once. Real-time clients keep their streams
// open for as long as they run, so without this a shutdown would wait out its whole grace period
// and then cut every stream mid-block.
//
// Thread-safe. DrainAll calls DrainableStream::EndAfterCurrentBlock with the registry's lock held:
// a stream must not call Add or Remove from inside it, nor while holding a lock that
// EndAfterCurrentBlock takes. Because Remove waits for a running DrainAll, a stream that calls
// Remove before it destroys itself is never called after it is gone.
#ifndef TIMBRE_SERVER_RPC_STREAM_DRAIN_H_
#define TIMBRE_SERVER_RPC_STREAM_DRAIN_H_

#include <cstddef>
#include <unordered_set>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace timbre {

// A session that a drain can end.
class DrainableStream {
 public:
  virtual ~DrainableStream() = default;
  // Ends the session once the block in flight, if any, has been answered; a session waiting for
  // its next block ends at once. Called at most once per session, from any thread.
  virtual void EndAfterCurrentBlock() = 0;
};

class StreamDrain {
 public:
  // Registers an open session. Returns false, without registering it, when the server is already
  // draining: the session should then end at once.
  bool Add(DrainableStream* stream);
  // Unregisters `stream` (a no-op for a stream that is not registered). Once it returns,
  // EndAfterCurrentBlock is not called on `stream` any more.
  void Remove(DrainableStream* stream);
  // Marks the server as draining and calls EndAfterCurrentBlock on every registered session.
  // Later calls do nothing.
  void DrainAll();

  bool draining() const;
  size_t open_streams() const;

 private:
  mutable absl::Mutex mutex_;
  std::unordered_set<DrainableStream*> streams_ ABSL_GUARDED_BY(mutex_);
  bool draining_ ABSL_GUARDED_BY(mutex_) = false;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_RPC_STREAM_DRAIN_H_
