// A demo speaker made from generated frames, so a fresh server has something to serve.
//
// Frames are drawn around random cluster centres (HuBERT-like scale), and the index is trained
// exactly as RVC's train_index does: IVF{RvcListCount(N)},Flat, L2, nprobe 1, added in batches
// of 8192. It is published as a numbered version through SpeakerRepository::PublishVersion.
//
// Thread-safe: free functions without state.
#ifndef TIMBRE_SERVER_BUILD_DEMO_SPEAKER_H_
#define TIMBRE_SERVER_BUILD_DEMO_SPEAKER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "server/io/frame_codec.h"
#include "server/serving/speaker_repository.h"

namespace timbre {

struct DemoSpeakerOptions {
  std::string name = "demo";  // speaker name
  int dim = 768;              // 768 as RVC v2, 256 as v1
  int64_t frames = 20000;     // stored vectors (about 6.7 minutes of speech at 50 frames/s)
  int clusters = 256;         // cluster centres the frames are drawn around
  uint32_t seed = 7;          // generator seed; the same seed gives the same frames
};

// `rows` frames of `dim` values drawn around `clusters` centres. Deterministic in `seed`.
FrameMatrix GenerateClusteredFrames(int64_t rows, int dim, int clusters, uint32_t seed);

// Trains and publishes the demo speaker; returns the version published.
// Errors: INVALID_ARGUMENT for bad options; those of FaissIndex::Train and PublishVersion.
absl::StatusOr<std::string> CreateDemoSpeaker(const SpeakerRepository& repository,
                                              const DemoSpeakerOptions& options);

}  // namespace timbre

#endif  // TIMBRE_SERVER_BUILD_DEMO_SPEAKER_H_
