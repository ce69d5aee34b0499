#include "server/core/snapshot_loader.h"

#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/demo_speaker.h"
#include "tests/test_support.h"

namespace timbre {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;
using ::timbre::testing::WriteRvcIndex;

class SnapshotLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    source_.version = "added_alice.index";
    source_.index_path = scratch_.Join("alice/added_alice.index");
    WriteRvcIndex(GenerateClusteredFrames(300, 16, 6, 8), 6, source_.index_path);
  }

  ScratchDir scratch_;
  VersionSource source_;
};

TEST_F(SnapshotLoaderTest, LoadsTheVersionAsASnapshot) {
  auto snapshot = LoadSnapshot("alice", source_, SnapshotLoadOptions());
  ASSERT_THAT(snapshot, IsOk());
  EXPECT_EQ((*snapshot)->speaker, "alice");
  EXPECT_EQ((*snapshot)->version, "added_alice.index");
  EXPECT_EQ((*snapshot)->path, source_.index_path);
  EXPECT_EQ((*snapshot)->index->size(), 300);
  EXPECT_EQ((*snapshot)->index->mapped_bytes(), 0);
  EXPECT_EQ((*snapshot)->warmup_frames, 0);
}

TEST_F(SnapshotLoaderTest, MapsAndWarmsUpWhenAsked) {
  SnapshotLoadOptions options;
  options.mmap = true;
  options.warmup = true;
  options.warmup_options.batches = 2;
  options.warmup_options.frames_per_batch = 4;
  auto snapshot = LoadSnapshot("alice", source_, options);
  ASSERT_THAT(snapshot, IsOk());
  EXPECT_EQ((*snapshot)->index->mapped_bytes(),
            static_cast<int64_t>(std::filesystem::file_size(source_.index_path)));
  EXPECT_EQ((*snapshot)->warmup_frames, 8);
}

TEST_F(SnapshotLoaderTest, MetadataMustAgreeWithTheIndex) {
  source_.version = "4";
  source_.metadata.set_dim(32);
  EXPECT_THAT(LoadSnapshot("alice", source_, SnapshotLoadOptions()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("version 4"), HasSubstr("dim 32"), HasSubstr("16"))));
  source_.metadata.set_dim(16);
  source_.metadata.set_num_vectors(7);
  EXPECT_THAT(LoadSnapshot("alice", source_, SnapshotLoadOptions()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("7 vectors"), HasSubstr("300"))));
}

TEST_F(SnapshotLoaderTest, BadWarmupOptionsFailTheLoad) {
  SnapshotLoadOptions options;
  options.warmup = true;
  options.warmup_options.k = 0;
  EXPECT_THAT(LoadSnapshot("alice", source_, options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("warm-up")));
}

TEST_F(SnapshotLoaderTest, EstimateIsTheFileSizeUnlessMapped) {
  EXPECT_EQ(EstimateLoadBytes(source_, /*mmap=*/false),
            static_cast<int64_t>(std::filesystem::file_size(source_.index_path)));
  EXPECT_EQ(EstimateLoadBytes(source_, /*mmap=*/true), 0);
  source_.index_path = scratch_.Join("missing.index");
  EXPECT_EQ(EstimateLoadBytes(source_, /*mmap=*/false), 0);
}

}  // namespace
}  // namespace timbre
