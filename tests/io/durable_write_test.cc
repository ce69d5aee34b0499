#include "server/io/durable_write.h"

#include <sys/stat.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace timbre {
namespace {

namespace fs = std::filesystem;

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;
using ::timbre::testing::IsOk;
using ::timbre::testing::IsOkAndHolds;
using ::timbre::testing::ListDir;
using ::timbre::testing::ReadFile;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;
using ::timbre::testing::WriteFile;

TEST(ReplaceFileDurablyTest, CreatesTheFileWithItsContentsAndNothingElse) {
  ScratchDir dir;
  ASSERT_THAT(ReplaceFileDurably(dir.Join("a.json"), "{}"), IsOk());
  EXPECT_EQ(ReadFile(dir.Join("a.json")), "{}");
  struct stat info;
  ASSERT_EQ(stat(dir.Join("a.json").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0644u);
  EXPECT_THAT(ListDir(dir.path()), ElementsAre("a.json"));
}

TEST(ReplaceFileDurablyTest, ReplacesAnExistingFileWhole) {
  ScratchDir dir;
  WriteFile(dir.Join("a.json"), "the old contents, longer than the new");
  ASSERT_THAT(ReplaceFileDurably(dir.Join("a.json"), "new"), IsOk());
  EXPECT_EQ(ReadFile(dir.Join("a.json")), "new");
  EXPECT_THAT(ListDir(dir.path()), ElementsAre("a.json"));
}

TEST(ReplaceFileDurablyTest, WritesWhatTheWriterAppends) {
  ScratchDir dir;
  ASSERT_THAT(ReplaceFileDurablyWith(dir.Join("a.bin"), "", [](OutputFile& file) {
                if (absl::Status first = file.Append("head,"); !first.ok()) return first;
                return file.Append("body");
              }),
              IsOk());
  EXPECT_EQ(ReadFile(dir.Join("a.bin")), "head,body");
}

TEST(ReplaceFileDurablyTest, AFailingWriterLeavesTheOldFileAndNoTemporary) {
  ScratchDir dir;
  WriteFile(dir.Join("a.json"), "old");
  EXPECT_THAT(ReplaceFileDurablyWith(dir.Join("a.json"), "",
                                     [](OutputFile& file) {
                                       file.Append("half").IgnoreError();
                                       return absl::ResourceExhaustedError("disk full");
                                     }),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("disk full")));
  EXPECT_EQ(ReadFile(dir.Join("a.json")), "old");
  EXPECT_THAT(ListDir(dir.path()), ElementsAre("a.json"));
}

TEST(ReplaceFileDurablyTest, AMissingDirectoryIsNotFoundNamingTheFile) {
  ScratchDir dir;
  EXPECT_THAT(ReplaceFileDurably(dir.Join("missing/a.json"), "x", "job record 'a.json'"),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("job record 'a.json'"), HasSubstr("No such file"))));
  EXPECT_THAT(ListDir(dir.path()), IsEmpty());
}

TEST(ReplaceFileDurablyTest, AFileWhereTheDirectoryBelongsFailsAndLeavesItAlone) {
  ScratchDir dir;
  WriteFile(dir.Join("file"), "a file");
  EXPECT_THAT(ReplaceFileDurably(dir.Join("file/a.json"), "x"),
              StatusIs(absl::StatusCode::kInternal,
                       AllOf(HasSubstr("file/a.json"), HasSubstr("Not a directory"))));
  EXPECT_EQ(ReadFile(dir.Join("file")), "a file");
  EXPECT_THAT(ListDir(dir.path()), ElementsAre("file"));
}

TEST(ReplaceFileDurablyTest, ADirectoryInThePlaceOfTheFileStaysAndNoTemporaryIsLeft) {
  ScratchDir dir;
  ASSERT_EQ(mkdir(dir.Join("a.json").c_str(), 0755), 0);
  WriteFile(dir.Join("a.json/inside"), "kept");
  EXPECT_THAT(ReplaceFileDurably(dir.Join("a.json"), "x"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("a.json' into place")));
  EXPECT_EQ(ReadFile(dir.Join("a.json/inside")), "kept");
  EXPECT_THAT(ListDir(dir.path()), ElementsAre("a.json"));
}

TEST(ReplaceFileDurablyTest, TemporariesAreRecognisedByName) {
  EXPECT_TRUE(IsPartialFileName("job-0123456789ab.json.partial-Xy12Ab"));
  EXPECT_TRUE(IsPartialFileName("/a/b/vectors.f32.partial-abcdef"));
  EXPECT_FALSE(IsPartialFileName("job-0123456789ab.json"));
  EXPECT_FALSE(IsPartialFileName("partial.json"));
}

TEST(CreateStagingDirectoryTest, MakesAFreshHiddenDirectory) {
  ScratchDir dir;
  absl::StatusOr<std::string> first = CreateStagingDirectory(dir.path());
  absl::StatusOr<std::string> second = CreateStagingDirectory(dir.path());
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(second, IsOk());
  EXPECT_NE(*first, *second);
  EXPECT_THAT(*first, StartsWith(dir.Join(".staging-")));
  EXPECT_EQ(first->size(), dir.Join(".staging-").size() + 16);
  EXPECT_TRUE(fs::is_directory(*first));
  EXPECT_THAT(ListDir(*first), IsEmpty());
}

TEST(CreateStagingDirectoryTest, AMissingOrFileParentFailsNamingIt) {
  ScratchDir dir;
  EXPECT_THAT(CreateStagingDirectory(dir.Join("missing")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing/.staging-")));
  WriteFile(dir.Join("file"), "a file");
  EXPECT_THAT(CreateStagingDirectory(dir.Join("file")),
              StatusIs(absl::StatusCode::kInternal,
                       AllOf(HasSubstr("file/.staging-"), HasSubstr("Not a directory"))));
  EXPECT_THAT(ListDir(dir.path()), ElementsAre("file"));
}

TEST(RemoveStagingDirectoriesTest, RemovesStagingDirectoriesAndNothingElse) {
  ScratchDir dir;
  auto first = CreateStagingDirectory(dir.path());
  auto second = CreateStagingDirectory(dir.path());
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(second, IsOk());
  WriteFile(*first + "/sub/index.faiss", "half written");
  WriteFile(dir.Join("1/index.faiss"), "published");
  WriteFile(dir.Join(".partial.index"), "someone else's");
  EXPECT_THAT(RemoveStagingDirectories(dir.path()), IsOkAndHolds(2));
  EXPECT_THAT(ListDir(dir.path()), ElementsAre(".partial.index", "1"));
  EXPECT_THAT(RemoveStagingDirectories(dir.path()), IsOkAndHolds(0));
  EXPECT_THAT(RemoveStagingDirectories(dir.Join("missing")), IsOkAndHolds(0));
  EXPECT_THAT(RemoveStagingDirectories(dir.Join(".partial.index")),
              StatusIs(absl::StatusCode::kInternal, HasSubstr(".partial.index")));
}

// A staging directory in `parent` holding a.txt and sub/b.txt.
std::string FilledStaging(const std::string& parent) {
  absl::StatusOr<std::string> staging = CreateStagingDirectory(parent);
  EXPECT_THAT(staging, IsOk());
  if (!staging.ok()) return "";
  WriteFile(*staging + "/a.txt", "a");
  WriteFile(*staging + "/sub/b.txt", "b");
  return *staging;
}

// Candidate names from `names`, in order, then "none-left".
class Candidates {
 public:
  explicit Candidates(std::vector<std::string> names) : names_(std::move(names)) {}
  std::string operator()() {
    ++calls_;
    return next_ < names_.size() ? names_[next_++] : "none-left";
  }
  int calls() const { return calls_; }

 private:
  std::vector<std::string> names_;
  size_t next_ = 0;
  int calls_ = 0;
};

TEST(PublishStagedDirectoryTest, RenamesToTheFirstCandidate) {
  ScratchDir dir;
  const std::string staging = FilledStaging(dir.path());
  Candidates candidates({"7", "8"});
  EXPECT_THAT(PublishStagedDirectory(staging, dir.path(), 10, std::ref(candidates)),
              IsOkAndHolds("7"));
  EXPECT_EQ(candidates.calls(), 1);
  EXPECT_EQ(ReadFile(dir.Join("7/a.txt")), "a");
  EXPECT_EQ(ReadFile(dir.Join("7/sub/b.txt")), "b");
  EXPECT_THAT(ListDir(dir.path()), ElementsAre("7"));
}

TEST(PublishStagedDirectoryTest, ATakenNameIsNeverReplaced) {
  // Taken by a directory with files, by an empty directory and by a regular file: all three stay
  // as they were and the next candidate is used.
  ScratchDir dir;
  WriteFile(dir.Join("full/kept.txt"), "kept");
  ASSERT_EQ(mkdir(dir.Join("empty").c_str(), 0755), 0);
  WriteFile(dir.Join("file"), "a file");
  const std::string staging = FilledStaging(dir.path());
  Candidates candidates({"full", "empty", "file", "free"});
  EXPECT_THAT(PublishStagedDirectory(staging, dir.path(), 10, std::ref(candidates)),
              IsOkAndHolds("free"));
  EXPECT_EQ(ReadFile(dir.Join("full/kept.txt")), "kept");
  EXPECT_THAT(ListDir(dir.Join("empty")), IsEmpty());
  EXPECT_EQ(ReadFile(dir.Join("file")), "a file");
  EXPECT_EQ(ReadFile(dir.Join("free/a.txt")), "a");
  EXPECT_THAT(ListDir(dir.path()), ElementsAre("empty", "file", "free", "full"));
}

TEST(PublishStagedDirectoryTest, EveryCandidateTakenRemovesTheStagingDirectory) {
  ScratchDir dir;
  WriteFile(dir.Join("1/kept.txt"), "kept");
  WriteFile(dir.Join("2/kept.txt"), "kept");
  const std::string staging = FilledStaging(dir.path());
  Candidates candidates({"1", "2", "1"});
  EXPECT_THAT(PublishStagedDirectory(staging, dir.path(), 3, std::ref(candidates)),
              StatusIs(absl::StatusCode::kInternal,
                       AllOf(HasSubstr("every one of 3 candidate names was taken"),
                             HasSubstr("the last '1'"), HasSubstr(dir.path()))));
  EXPECT_EQ(candidates.calls(), 3);
  EXPECT_THAT(ListDir(dir.path()), ElementsAre("1", "2"));
  EXPECT_EQ(ReadFile(dir.Join("1/kept.txt")), "kept");
}

TEST(PublishStagedDirectoryTest, NoCandidatesIsInvalidAndRemovesTheStagingDirectory) {
  ScratchDir dir;
  const std::string staging = FilledStaging(dir.path());
  Candidates candidates({"1"});
  EXPECT_THAT(PublishStagedDirectory(staging, dir.path(), 0, std::ref(candidates)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("0 candidate names")));
  EXPECT_EQ(candidates.calls(), 0);
  EXPECT_THAT(ListDir(dir.path()), IsEmpty());
}

TEST(PublishStagedDirectoryTest, AMissingParentFailsAndRemovesTheStagingDirectory) {
  ScratchDir dir;
  const std::string staging = FilledStaging(dir.path());
  Candidates candidates({"1"});
  EXPECT_THAT(PublishStagedDirectory(staging, dir.Join("missing"), 5, std::ref(candidates)),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("renaming"), HasSubstr("missing/1"))));
  EXPECT_EQ(candidates.calls(), 1);
  EXPECT_THAT(ListDir(dir.path()), IsEmpty());
}

TEST(PublishStagedDirectoryTest, AFileAsParentFailsAndRemovesTheStagingDirectory) {
  ScratchDir dir;
  WriteFile(dir.Join("file"), "a file");
  const std::string staging = FilledStaging(dir.path());
  Candidates candidates({"1"});
  EXPECT_THAT(PublishStagedDirectory(staging, dir.Join("file"), 5, std::ref(candidates)),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("Not a directory")));
  EXPECT_EQ(ReadFile(dir.Join("file")), "a file");
  EXPECT_THAT(ListDir(dir.path()), ElementsAre("file"));
}

TEST(PublishStagedDirectoryTest, AMissingStagingDirectoryFailsNamingIt) {
  ScratchDir dir;
  Candidates candidates({"1"});
  EXPECT_THAT(PublishStagedDirectory(dir.Join(".staging-gone"), dir.path(), 5,
                                     std::ref(candidates)),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(".staging-gone")));
  EXPECT_EQ(candidates.calls(), 0);
  EXPECT_THAT(ListDir(dir.path()), IsEmpty());
}

}  // namespace
}  // namespace timbre
