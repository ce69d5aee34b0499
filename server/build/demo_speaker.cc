#include "server/build/demo_speaker.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "server/build/build_recipe.h"
#include "server/faiss/faiss_index.h"

namespace timbre {

FrameMatrix GenerateClusteredFrames(int64_t rows, int dim, int clusters, uint32_t seed) {
  std::mt19937 random(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> centres(static_cast<size_t>(clusters) * dim);
  for (float& value : centres) value = normal(random);
  std::uniform_int_distribution<int> pick(0, clusters - 1);
  FrameMatrix frames;
  frames.rows = rows;
  frames.dim = dim;
  frames.values.resize(static_cast<size_t>(rows) * dim);
  for (int64_t i = 0; i < rows; ++i) {
    const float* centre = centres.data() + static_cast<size_t>(pick(random)) * dim;
    float* row = frames.row(i);
    for (int j = 0; j < dim; ++j) row[j] = centre[j] + 0.35f * normal(random);
  }
  return frames;
}

absl::StatusOr<std::string> CreateDemoSpeaker(const SpeakerRepository& repository,
                                              const DemoSpeakerOptions& options) {
  if (options.dim < 1 || options.frames < 39 || options.clusters < 1) {
    return absl::InvalidArgumentError("demo speaker needs dim >= 1, frames >= 39, clusters >= 1");
  }
  const FrameMatrix frames =
      GenerateClusteredFrames(options.frames, options.dim, options.clusters, options.seed);
  TrainOptions train;
  train.description = absl::StrCat("IVF", RvcListCount(options.frames), ",Flat");
  absl::StatusOr<std::unique_ptr<FaissIndex>> index =
      FaissIndex::Train(train, frames.values.data(), frames.rows, frames.dim);
  if (!index.ok()) return index.status();
  timbre::v1::VersionMetadata metadata;
  metadata.set_dim(options.dim);
  metadata.set_num_vectors(options.frames);
  metadata.set_description(train.description);
  metadata.set_recipe("demo");
  metadata.set_comment(absl::StrCat("generated frames, seed ", options.seed));
  return repository.PublishVersion(options.name, metadata, [&](const std::string& dir) {
    return (*index)->Write(dir + "/" + kDefaultIndexFileName);
  });
}

}  // namespace timbre
