// What the serving commands (blend, search, bench) read from their flags: the retrieval options
// of each call and the frames of --input.
#ifndef TIMBRE_CLIENT_CLI_FRAME_FLAGS_H_
#define TIMBRE_CLIENT_CLI_FRAME_FLAGS_H_

#include "absl/status/statusor.h"
#include "timbre/v1/timbre.pb.h"

namespace timbre {

// --k, --index_rate, --nprobe and --k_factor; each left unset (the server's default) when its
// flag keeps its default.
v1::RetrievalOptions RetrievalOptionsFromFlags();

// --input as frames, float32 or float16 [frames, dim]. Errors (usage errors): INVALID_ARGUMENT
// for another shape; the reader's for an unreadable or invalid .npy file.
absl::StatusOr<v1::Frames> ReadInputFrames();

}  // namespace timbre

#endif  // TIMBRE_CLIENT_CLI_FRAME_FLAGS_H_
