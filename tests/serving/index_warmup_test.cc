#include "server/serving/index_warmup.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/build/demo_speaker.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;
using ::timbre::testing::WriteRvcIndex;

// The frames WarmUpIndex searched, or -1 (and a test failure) on error.
int64_t FramesSearched(const FaissIndex& index, const WarmupOptions& options) {
  absl::StatusOr<int64_t> frames = WarmUpIndex(index, options);
  EXPECT_THAT(frames, IsOk());
  return frames.ok() ? *frames : -1;
}

// An index of 40 vectors in one list.
std::unique_ptr<FaissIndex> SmallIndex() {
  ScratchDir scratch;
  const std::string path = scratch.Join("small.index");
  WriteRvcIndex(GenerateClusteredFrames(40, 8, 2, 4), 1, path);
  auto index = FaissIndex::Load(path);
  EXPECT_THAT(index, IsOk());
  return index.ok() ? *std::move(index) : nullptr;
}

TEST(IndexWarmupTest, SearchesTheRequestedFramesOfALoadedAndAMappedIndex) {
  ScratchDir scratch;
  const std::string path = scratch.Join("added.index");
  WriteRvcIndex(GenerateClusteredFrames(300, 16, 6, 3), 6, path);
  for (bool mmap : {false, true}) {
    IndexLoadOptions load;
    load.mmap = mmap;
    auto index = FaissIndex::Load(path, load);
    ASSERT_THAT(index, IsOk());
    WarmupOptions options;
    options.batches = 3;
    options.frames_per_batch = 5;
    EXPECT_EQ(FramesSearched(**index, options), 15) << "mmap " << mmap;
    EXPECT_EQ(FramesSearched(**index, WarmupOptions()), 8 * 16) << "mmap " << mmap;
  }
}

TEST(IndexWarmupTest, MoreFramesThanVectorsRevisitVectors) {
  std::unique_ptr<FaissIndex> index = SmallIndex();
  ASSERT_NE(index, nullptr);
  WarmupOptions options;
  options.batches = 10;
  options.frames_per_batch = 16;
  options.k = 50;  // more than the index holds: missing neighbours are fine
  EXPECT_EQ(FramesSearched(*index, options), 160);
}

TEST(IndexWarmupTest, RejectsEmptyOptions) {
  std::unique_ptr<FaissIndex> index = SmallIndex();
  ASSERT_NE(index, nullptr);
  WarmupOptions options;
  options.batches = 0;
  EXPECT_THAT(WarmUpIndex(*index, options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("batches 0")));
}

}  // namespace
}  // namespace timbre
