#include "server/rpc/stream_drain.h"

namespace timbre {

bool StreamDrain::Add(DrainableStream* stream) {
  absl::MutexLock lock(&mutex_);
  if (draining_) return false;
  streams_.insert(stream);
  return true;
}

void StreamDrain::Remove(DrainableStream* stream) {
  absl::MutexLock lock(&mutex_);
  streams_.erase(stream);
}

void StreamDrain::DrainAll() {
  absl::MutexLock lock(&mutex_);
  if (draining_) return;
  draining_ = true;
  for (DrainableStream* stream : streams_) stream->EndAfterCurrentBlock();
  // Streams leave through Remove when they are done; none can join any more.
}

bool StreamDrain::draining() const {
  absl::MutexLock lock(&mutex_);
  return draining_;
}

size_t StreamDrain::open_streams() const {
  absl::MutexLock lock(&mutex_);
  return streams_.size();
}

}  // namespace timbre
