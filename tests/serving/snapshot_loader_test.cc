#include "server/serving/snapshot_loader.h"

#include <filesystem>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/build/demo_speaker.h"
#include "server/io/vectors_file.h"
#include "tests/support/test_support.h"

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

TEST_F(SnapshotLoaderTest, ExactListScanIsOnUnlessTurnedOff) {
  auto scanned = LoadSnapshot("alice", source_, SnapshotLoadOptions());
  ASSERT_THAT(scanned, IsOk());
  EXPECT_TRUE((*scanned)->index->pruned_list_scan());
  SnapshotLoadOptions off;
  off.exact_list_scan = false;
  auto by_faiss = LoadSnapshot("alice", source_, off);
  ASSERT_THAT(by_faiss, IsOk());
  EXPECT_FALSE((*by_faiss)->index->pruned_list_scan());
  // The scan's codes are counted: 300 vectors in blocks of 16 per list, 64 code bytes each.
  EXPECT_GT((*scanned)->index->memory_bytes(), (*by_faiss)->index->memory_bytes() + 300 * 64);
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

TEST_F(SnapshotLoaderTest, ReadsTheSidecarItsMetadataNamesAndKeepsTheMetadata) {
  // A sidecar whose rows differ from the index's own vectors, so its use shows.
  FrameMatrix sidecar = GenerateClusteredFrames(300, 16, 6, 8);
  for (float& value : sidecar.values) value += 1.0f;
  ASSERT_THAT(WriteVectorsFile(scratch_.Join("alice/vectors.f32"), sidecar.values.data(),
                               sidecar.rows, sidecar.dim),
              IsOk());
  source_.metadata.set_vectors_file("vectors.f32");
  source_.metadata.set_recipe("rvc");
  auto snapshot = LoadSnapshot("alice", source_, SnapshotLoadOptions());
  ASSERT_THAT(snapshot, IsOk());
  const float* stored = (*snapshot)->index->StoredVector(7);
  EXPECT_EQ(std::vector<float>(stored, stored + 16),
            std::vector<float>(sidecar.row(7), sidecar.row(7) + 16));
  EXPECT_EQ((*snapshot)->metadata.recipe(), "rvc");
  // The sidecar is read into the heap, mapped or not.
  EXPECT_EQ(EstimateLoadBytes(source_, /*mmap=*/true, /*exact_list_scan=*/true), 300 * 16 * 4);

  source_.metadata.set_vectors_file("missing.f32");
  EXPECT_THAT(LoadSnapshot("alice", source_, SnapshotLoadOptions()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.f32")));
}

TEST_F(SnapshotLoaderTest, BadWarmupOptionsFailTheLoad) {
  SnapshotLoadOptions options;
  options.warmup = true;
  options.warmup_options.k = 0;
  EXPECT_THAT(LoadSnapshot("alice", source_, options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("warm-up")));
}

TEST_F(SnapshotLoaderTest, EstimateIsTheFileSizeAndAQuarterForTheListScanUnlessMapped) {
  const auto bytes = static_cast<int64_t>(std::filesystem::file_size(source_.index_path));
  EXPECT_EQ(EstimateLoadBytes(source_, /*mmap=*/false, /*exact_list_scan=*/true),
            bytes + bytes / 4);
  EXPECT_EQ(EstimateLoadBytes(source_, /*mmap=*/false, /*exact_list_scan=*/false), bytes);
  EXPECT_EQ(EstimateLoadBytes(source_, /*mmap=*/true, /*exact_list_scan=*/true), 0);
  source_.index_path = scratch_.Join("missing.index");
  EXPECT_EQ(EstimateLoadBytes(source_, /*mmap=*/false, /*exact_list_scan=*/true), 0);
}

}  // namespace
}  // namespace timbre
