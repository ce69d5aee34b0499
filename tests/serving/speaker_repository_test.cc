#include "server/serving/speaker_repository.h"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "server/build/demo_speaker.h"
#include "server/faiss/faiss_index.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

namespace fs = std::filesystem;

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;
using ::timbre::testing::IsOk;
using ::timbre::testing::IsOkAndHolds;
using ::timbre::testing::ListDir;
using ::timbre::testing::ReadFile;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;
using ::timbre::testing::WriteFile;
using ::timbre::testing::WriteRvcIndex;

constexpr char kAdded[] = "added_IVF8_Flat_nprobe_1_alice_v2.index";
constexpr char kTrained[] = "trained_IVF8_Flat_nprobe_1_alice_v2.index";

class SpeakerRepositoryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    frames_ = new FrameMatrix(GenerateClusteredFrames(400, 16, 8, 21));
    TrainOptions options;
    options.description = "IVF8,Flat";
    auto index = FaissIndex::Train(options, frames_->values.data(), frames_->rows, frames_->dim);
    ASSERT_TRUE(index.ok()) << index.status();
    index_ = index->release();
  }
  static void TearDownTestSuite() {
    delete index_;
    delete frames_;
  }

  void SetUp() override {
    auto repository = SpeakerRepository::Create({scratch_.path()});
    ASSERT_THAT(repository, IsOk());
    repository_ = *std::move(repository);
  }

  // Writes a real RVC-style index file into <root>/<speaker>/<file>.
  void WriteRvcFile(const std::string& speaker, const std::string& file) {
    WriteRvcIndex(*frames_, 8, scratch_.Join(speaker + "/" + file));
  }

  // A numbered version written by hand, as an operator or an older timbre would.
  void WriteNumberedVersion(const std::string& speaker, const std::string& version,
                            const std::string& metadata_json,
                            const std::string& index_file = kDefaultIndexFileName) {
    const std::string dir = scratch_.Join(speaker + "/" + version);
    WriteFile(dir + "/" + kMetadataFileName, metadata_json);
    fs::create_directories(dir);
    ASSERT_THAT(index_->Write(dir + "/" + index_file), IsOk());
  }

  absl::StatusOr<std::string> Publish(const std::string& speaker,
                                      timbre::v1::VersionMetadata metadata = {}) {
    return repository_->PublishVersion(speaker, metadata, [](const std::string& dir) {
      return index_->Write(dir + "/" + kDefaultIndexFileName);
    });
  }

  static FrameMatrix* frames_;
  static FaissIndex* index_;
  ScratchDir scratch_;
  std::unique_ptr<SpeakerRepository> repository_;
};

FrameMatrix* SpeakerRepositoryTest::frames_ = nullptr;
FaissIndex* SpeakerRepositoryTest::index_ = nullptr;

TEST(SpeakerRepositoryCreateTest, RejectsEmptyRoot) {
  EXPECT_THAT(SpeakerRepository::Create({""}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("root")));
}

TEST(SpeakerRepositoryCreateTest, RejectsMissingDirectory) {
  ScratchDir scratch;
  const std::string missing = scratch.Join("nope");
  EXPECT_THAT(SpeakerRepository::Create({missing}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(missing)));
}

TEST(SpeakerRepositoryCreateTest, RejectsRegularFile) {
  ScratchDir scratch;
  const std::string file = scratch.Join("file");
  WriteFile(file, "x");
  EXPECT_THAT(SpeakerRepository::Create({file}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("not a directory")));
}

TEST_F(SpeakerRepositoryTest, RootIsKept) { EXPECT_EQ(repository_->root(), scratch_.path()); }

TEST_F(SpeakerRepositoryTest, ListSpeakersOfEmptyRoot) {
  auto names = repository_->ListSpeakers();
  ASSERT_THAT(names, IsOk());
  EXPECT_THAT(*names, IsEmpty());
}

TEST_F(SpeakerRepositoryTest, ListSpeakersSkipsFilesHiddenAndInvalidNamesAndSorts) {
  for (const char* dir : {"bob", "alice", "Zed", "a.b", ".hidden", ".staging-1", "-dash",
                          "has space", "caf\xC3\xA9"}) {
    fs::create_directories(scratch_.Join(dir));
  }
  WriteFile(scratch_.Join("carol"), "a file, not a speaker");
  WriteFile(scratch_.Join("notes.index"), "a file, not a speaker");
  auto names = repository_->ListSpeakers();
  ASSERT_THAT(names, IsOk());
  EXPECT_THAT(*names, ElementsAre("Zed", "a.b", "alice", "bob"));
}

TEST_F(SpeakerRepositoryTest, ServesSingleRvcFileByItsName) {
  WriteRvcFile("alice", kAdded);
  auto source = repository_->ResolveServingVersion("alice");
  ASSERT_THAT(source, IsOk());
  EXPECT_EQ(source->version, kAdded);
  EXPECT_FALSE(source->numbered);
  EXPECT_EQ(source->index_path, scratch_.Join(std::string("alice/") + kAdded));
  EXPECT_THAT(source->fingerprint, Not(IsEmpty()));
  EXPECT_EQ(source->metadata.ByteSizeLong(), 0u);
  EXPECT_THAT(FaissIndex::Load(source->index_path), IsOk());
}

TEST_F(SpeakerRepositoryTest, ServesAnyIndexNameOtherThanTrained) {
  WriteRvcFile("alice", "my_voice.index");
  WriteRvcFile("alice", kTrained);
  WriteFile(scratch_.Join("alice/notes.txt"), "ignored");
  WriteFile(scratch_.Join("alice/.copying.index"), "hidden, ignored");
  auto source = repository_->ResolveServingVersion("alice");
  ASSERT_THAT(source, IsOk());
  EXPECT_EQ(source->version, "my_voice.index");
}

TEST_F(SpeakerRepositoryTest, OnlyTrainedFileIsFailedPrecondition) {
  WriteRvcFile("alice", kTrained);
  EXPECT_THAT(repository_->ResolveServingVersion("alice"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(kTrained), HasSubstr("added_"))));
}

TEST_F(SpeakerRepositoryTest, TwoIndexFilesAreFailedPreconditionListingBoth) {
  WriteRvcFile("alice", kAdded);
  WriteRvcFile("alice", "added_other.index");
  EXPECT_THAT(repository_->ResolveServingVersion("alice"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(kAdded), HasSubstr("added_other.index"),
                             HasSubstr("2 index files"))));
}

TEST_F(SpeakerRepositoryTest, EmptyDirectoryIsFailedPrecondition) {
  fs::create_directories(scratch_.Join("alice"));
  EXPECT_THAT(repository_->ResolveServingVersion("alice"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("alice"), HasSubstr("no index"))));
}

TEST_F(SpeakerRepositoryTest, OnlyHiddenAndOtherFilesIsFailedPrecondition) {
  WriteFile(scratch_.Join("alice/.partial.index"), "copy in progress");
  WriteFile(scratch_.Join("alice/readme.md"), "notes");
  fs::create_directories(scratch_.Join("alice/.5"));
  fs::create_directories(scratch_.Join("alice/v3"));
  EXPECT_THAT(repository_->ResolveServingVersion("alice"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no index")));
}

TEST_F(SpeakerRepositoryTest, StagingLeftoversAreRemovedAndNothingElse) {
  // What a crash during a publish leaves: a hidden staging directory holding a partial version.
  WriteRvcFile("alice", "added_x.index");
  WriteFile(scratch_.Join("alice/.staging-0123456789abcdef/index.faiss"), "half written");
  WriteFile(scratch_.Join("bob/.staging-fedcba9876543210/index.faiss"), "half written");
  WriteFile(scratch_.Join("bob/.partial.index"), "an operator's copy in progress");
  auto removed = repository_->RemoveStagingLeftovers();
  ASSERT_THAT(removed, IsOk());
  EXPECT_EQ(*removed, 2);
  EXPECT_FALSE(fs::exists(scratch_.Join("alice/.staging-0123456789abcdef")));
  EXPECT_FALSE(fs::exists(scratch_.Join("bob/.staging-fedcba9876543210")));
  EXPECT_TRUE(fs::exists(scratch_.Join("alice/added_x.index")));
  EXPECT_TRUE(fs::exists(scratch_.Join("bob/.partial.index")));
  EXPECT_THAT(repository_->RemoveStagingLeftovers(), IsOkAndHolds(0));
  fs::remove_all(scratch_.path());  // the root itself gone: its error, nothing removed
  EXPECT_THAT(repository_->RemoveStagingLeftovers(), StatusIs(absl::StatusCode::kInternal, HasSubstr("reading repository")));
}

TEST_F(SpeakerRepositoryTest, UnknownSpeakerIsNotFound) {
  EXPECT_THAT(repository_->ResolveServingVersion("nobody"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nobody")));
}

TEST_F(SpeakerRepositoryTest, SpeakerThatIsAFileIsNotFound) {
  WriteFile(scratch_.Join("carol"), "a file");
  EXPECT_THAT(repository_->ResolveServingVersion("carol"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("carol")));
}

TEST_F(SpeakerRepositoryTest, InvalidNameIsInvalidArgument) {
  for (const char* name : {"", "..", "../x", "a/b", ".hidden"}) {
    EXPECT_THAT(repository_->ResolveServingVersion(name),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("speaker name")))
        << name;
  }
}

TEST_F(SpeakerRepositoryTest, HighestNumberedVersionWins) {
  WriteRvcFile("alice", kAdded);
  WriteNumberedVersion("alice", "2", R"({"format": 1, "recipe": "two"})");
  WriteNumberedVersion("alice", "10", R"({"format": 1, "recipe": "ten", "dim": 16})");
  WriteNumberedVersion("alice", "9", R"({"format": 1, "recipe": "nine"})");
  auto source = repository_->ResolveServingVersion("alice");
  ASSERT_THAT(source, IsOk());
  EXPECT_EQ(source->version, "10");  // numeric, not lexicographic order
  EXPECT_TRUE(source->numbered);
  EXPECT_EQ(source->metadata.recipe(), "ten");
  EXPECT_EQ(source->metadata.dim(), 16u);
  EXPECT_EQ(source->metadata.index_file(), kDefaultIndexFileName);
  EXPECT_EQ(fs::path(source->index_path),
            fs::path(scratch_.Join("alice/10")) / kDefaultIndexFileName);
  EXPECT_THAT(FaissIndex::Load(source->index_path), IsOk());
}

TEST_F(SpeakerRepositoryTest, VersionDirectoriesWithLeadingZerosAreNotVersions) {
  WriteNumberedVersion("alice", "3", R"({"format": 1})");
  WriteNumberedVersion("alice", "007", R"({"format": 1})");
  auto source = repository_->ResolveServingVersion("alice");
  ASSERT_THAT(source, IsOk());
  EXPECT_EQ(source->version, "3");
}

TEST_F(SpeakerRepositoryTest, NumberedVersionWinsOverRvcFile) {
  WriteRvcFile("alice", kAdded);
  WriteRvcFile("alice", "added_second.index");  // two files would be an error on their own
  WriteNumberedVersion("alice", "1", R"({"format": 1})");
  auto source = repository_->ResolveServingVersion("alice");
  ASSERT_THAT(source, IsOk());
  EXPECT_EQ(source->version, "1");
  EXPECT_TRUE(source->numbered);
}

TEST_F(SpeakerRepositoryTest, MetadataNamesTheIndexFile) {
  WriteNumberedVersion("alice", "3", R"({"format": 1, "index_file": "voice.faiss",
                                        "future_field": true})",
                       "voice.faiss");
  auto source = repository_->ResolveServingVersion("alice");
  ASSERT_THAT(source, IsOk());
  EXPECT_THAT(source->index_path, EndsWith("/3/voice.faiss"));
  EXPECT_THAT(FaissIndex::Load(source->index_path), IsOk());
}

TEST_F(SpeakerRepositoryTest, BadMetadataJsonIsFailedPrecondition) {
  WriteNumberedVersion("alice", "1", R"({"format": 1})");
  WriteNumberedVersion("alice", "2", "{not json");
  EXPECT_THAT(repository_->ResolveServingVersion("alice"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("version 2"), HasSubstr(kMetadataFileName))));
}

TEST_F(SpeakerRepositoryTest, MissingMetadataIsFailedPrecondition) {
  fs::create_directories(scratch_.Join("alice/4"));
  EXPECT_THAT(repository_->ResolveServingVersion("alice"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("version 4"), HasSubstr(kMetadataFileName))));
}

TEST_F(SpeakerRepositoryTest, MetadataIndexFileOutsideTheVersionIsFailedPrecondition) {
  for (const char* file : {"../x", "a/b", "/etc/passwd", "..", ".hidden"}) {
    ScratchDir scratch;
    auto repository = SpeakerRepository::Create({scratch.path()});
    ASSERT_THAT(repository, IsOk());
    WriteFile(scratch.Join("alice/1/metadata.json"),
              absl::StrCat(R"({"format": 1, "index_file": ")", file, R"("})"));
    EXPECT_THAT(
        (*repository)->ResolveServingVersion("alice"),
        StatusIs(absl::StatusCode::kFailedPrecondition,
                 AllOf(HasSubstr(absl::StrCat("'", file, "'")), HasSubstr("plain file name"))))
        << file;
  }
}

TEST_F(SpeakerRepositoryTest, FingerprintChangesWithTheFile) {
  WriteRvcFile("alice", kAdded);
  auto before = repository_->ResolveServingVersion("alice");
  ASSERT_THAT(before, IsOk());
  auto again = repository_->ResolveServingVersion("alice");
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(before->fingerprint, again->fingerprint);
  WriteFile(before->index_path, "shorter contents");
  auto after = repository_->ResolveServingVersion("alice");
  ASSERT_THAT(after, IsOk());
  EXPECT_NE(before->fingerprint, after->fingerprint);
}

TEST_F(SpeakerRepositoryTest, PublishesIncreasingVersions) {
  timbre::v1::VersionMetadata metadata;
  metadata.set_dim(16);
  metadata.set_num_vectors(400);
  metadata.set_recipe("test");
  auto first = Publish("alice", metadata);
  ASSERT_THAT(first, IsOk());
  EXPECT_EQ(*first, "1");
  auto second = Publish("alice", metadata);
  ASSERT_THAT(second, IsOk());
  EXPECT_EQ(*second, "2");

  EXPECT_THAT(ListDir(scratch_.Join("alice")), ElementsAre("1", "2"));
  for (const char* version : {"1", "2"}) {
    const std::string dir = scratch_.Join(std::string("alice/") + version);
    EXPECT_THAT(ListDir(dir), UnorderedElementsAre(kMetadataFileName, kDefaultIndexFileName));
    timbre::v1::VersionMetadata written;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(ReadFile(dir + "/" + kMetadataFileName),
                                                            &written)
                    .ok());
    EXPECT_EQ(written.format(), 1u);
    EXPECT_EQ(written.index_file(), kDefaultIndexFileName);
    EXPECT_EQ(written.dim(), 16u);
    EXPECT_EQ(written.num_vectors(), 400u);
    EXPECT_EQ(written.recipe(), "test");
    absl::Time created;
    std::string error;
    EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, written.created_at(), &created, &error))
        << written.created_at() << ": " << error;
    EXPECT_LT(absl::AbsDuration(absl::Now() - created), absl::Minutes(10));
    auto loaded = FaissIndex::Load(dir + "/" + kDefaultIndexFileName);
    ASSERT_THAT(loaded, IsOk());
    EXPECT_EQ((*loaded)->size(), 400);
  }
  auto source = repository_->ResolveServingVersion("alice");
  ASSERT_THAT(source, IsOk());
  EXPECT_EQ(source->version, "2");
  EXPECT_EQ(source->metadata.recipe(), "test");
}

TEST_F(SpeakerRepositoryTest, PublishKeepsGivenIndexFileAndCreatedAt) {
  timbre::v1::VersionMetadata metadata;
  metadata.set_index_file("voice.faiss");
  metadata.set_created_at("2024-01-02T03:04:05Z");
  auto version = repository_->PublishVersion(
      "bob", metadata, [](const std::string& dir) { return index_->Write(dir + "/voice.faiss"); });
  ASSERT_THAT(version, IsOk());
  auto source = repository_->ResolveServingVersion("bob");
  ASSERT_THAT(source, IsOk());
  EXPECT_EQ(source->version, *version);
  EXPECT_THAT(source->index_path, EndsWith("/voice.faiss"));
  EXPECT_EQ(source->metadata.created_at(), "2024-01-02T03:04:05Z");
  EXPECT_EQ(source->metadata.format(), 1u);
}

TEST_F(SpeakerRepositoryTest, PublishAfterHandWrittenVersionTakesNextNumber) {
  WriteNumberedVersion("alice", "41", R"({"format": 1})");
  auto version = Publish("alice");
  ASSERT_THAT(version, IsOk());
  EXPECT_EQ(*version, "42");
}

TEST_F(SpeakerRepositoryTest, FailingWriteLeavesNothing) {
  ASSERT_THAT(Publish("alice"), IsOk());
  bool called = false;
  auto version = repository_->PublishVersion(
      "alice", timbre::v1::VersionMetadata(), [&](const std::string& dir) {
        called = true;
        EXPECT_THAT(dir, HasSubstr(".staging-"));
        WriteFile(dir + "/" + kDefaultIndexFileName, "half written");
        return absl::DataLossError("disk on fire");
      });
  EXPECT_TRUE(called);
  EXPECT_THAT(version, StatusIs(absl::StatusCode::kDataLoss, HasSubstr("disk on fire")));
  EXPECT_THAT(ListDir(scratch_.Join("alice")), ElementsAre("1"));
  auto source = repository_->ResolveServingVersion("alice");
  ASSERT_THAT(source, IsOk());
  EXPECT_EQ(source->version, "1");
}

TEST_F(SpeakerRepositoryTest, WriteThatWritesNothingIsAnErrorAndLeavesNothing) {
  auto version =
      repository_->PublishVersion("alice", timbre::v1::VersionMetadata(),
                                  [](const std::string& dir) { return absl::OkStatus(); });
  EXPECT_THAT(version, StatusIs(absl::StatusCode::kInternal, HasSubstr(kDefaultIndexFileName)));
  EXPECT_THAT(ListDir(scratch_.Join("alice")), IsEmpty());
}

TEST_F(SpeakerRepositoryTest, WriteOfTheWrongFileIsAnErrorAndLeavesNothing) {
  auto version = repository_->PublishVersion("alice", timbre::v1::VersionMetadata(),
                                             [](const std::string& dir) {
                                               WriteFile(dir + "/other.faiss", "wrong name");
                                               return absl::OkStatus();
                                             });
  EXPECT_THAT(version, StatusIs(absl::StatusCode::kInternal, HasSubstr(kDefaultIndexFileName)));
  EXPECT_THAT(ListDir(scratch_.Join("alice")), IsEmpty());
}

TEST_F(SpeakerRepositoryTest, PublishRejectsInvalidName) {
  bool called = false;
  auto version = repository_->PublishVersion("../escape", timbre::v1::VersionMetadata(),
                                             [&](const std::string&) {
                                               called = true;
                                               return absl::OkStatus();
                                             });
  EXPECT_THAT(version, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("speaker name")));
  EXPECT_FALSE(called);
  EXPECT_THAT(ListDir(scratch_.path()), IsEmpty());
}

TEST_F(SpeakerRepositoryTest, ConcurrentPublishesGetDistinctVersions) {
  constexpr int kThreads = 4;
  std::vector<absl::StatusOr<std::string>> versions(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &versions] { versions[t] = Publish("alice"); });
  }
  for (std::thread& thread : threads) thread.join();
  std::set<std::string> distinct;
  for (const auto& version : versions) {
    ASSERT_THAT(version, IsOk());
    distinct.insert(*version);
  }
  EXPECT_THAT(distinct, UnorderedElementsAre("1", "2", "3", "4"));
  EXPECT_THAT(ListDir(scratch_.Join("alice")), ElementsAre("1", "2", "3", "4"));
  for (const std::string& version : distinct) {
    EXPECT_THAT(ListDir(scratch_.Join("alice/" + version)),
                UnorderedElementsAre(kMetadataFileName, kDefaultIndexFileName));
  }
  auto source = repository_->ResolveServingVersion("alice");
  ASSERT_THAT(source, IsOk());
  EXPECT_EQ(source->version, "4");
}

}  // namespace
}  // namespace timbre
