#include "server/io/posix_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <memory>
#include <string>

#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using ::timbre::testing::IsOk;
using ::timbre::testing::IsOkAndHolds;
using ::timbre::testing::ReadFile;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;
using ::timbre::testing::WriteFile;

TEST(ErrnoStatusTest, MapsTheReasonToACodeAndNamesWhatFailed) {
  for (int error : {ENOSPC, EDQUOT, EFBIG}) {
    EXPECT_THAT(ErrnoStatus(error, "writing 'a.npy'"),
                StatusIs(absl::StatusCode::kResourceExhausted, StartsWith("writing 'a.npy': ")))
        << error;
  }
  EXPECT_THAT(ErrnoStatus(ENOENT, "opening 'a'"),
              StatusIs(absl::StatusCode::kNotFound, "opening 'a': No such file or directory"));
  EXPECT_THAT(ErrnoStatus(EEXIST, "creating 'a'"),
              StatusIs(absl::StatusCode::kAlreadyExists, "creating 'a': File exists"));
  EXPECT_THAT(ErrnoStatus(EIO, "reading 'a'"),
              StatusIs(absl::StatusCode::kInternal, "reading 'a': Input/output error"));
}

TEST(SyncPathTest, SyncsFilesAndDirectories) {
  ScratchDir dir;
  WriteFile(dir.Join("a"), "a");
  EXPECT_THAT(SyncPath(dir.Join("a"), /*directory=*/false), IsOk());
  EXPECT_THAT(SyncPath(dir.path(), /*directory=*/true), IsOk());
}

TEST(SyncPathTest, AMissingPathOrAFileTakenForADirectoryFails) {
  ScratchDir dir;
  EXPECT_THAT(SyncPath(dir.Join("missing"), false),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
  WriteFile(dir.Join("a"), "a");
  EXPECT_THAT(SyncPath(dir.Join("a"), /*directory=*/true),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("Not a directory")));
}

TEST(StatFileTest, GivesSizeAndChangesWithTheFile) {
  ScratchDir dir;
  WriteFile(dir.Join("a"), "abc");
  absl::StatusOr<FileStamp> before = StatFile(dir.Join("a"));
  ASSERT_THAT(before, IsOk());
  EXPECT_EQ(before->bytes, 3);
  WriteFile(dir.Join("a"), "abcd");
  absl::StatusOr<FileStamp> after = StatFile(dir.Join("a"));
  ASSERT_THAT(after, IsOk());
  EXPECT_NE(*after, *before);
  EXPECT_THAT(StatFile(dir.Join("missing")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
}

TEST(OutputFileTest, WritesSyncsAndCountsBytes) {
  ScratchDir dir;
  absl::StatusOr<std::unique_ptr<OutputFile>> file = OutputFile::Create(dir.Join("a"));
  ASSERT_THAT(file, IsOk());
  ASSERT_THAT((*file)->Append("abc"), IsOk());
  ASSERT_THAT((*file)->Append("de"), IsOk());
  EXPECT_EQ((*file)->size(), 5);
  EXPECT_EQ((*file)->path(), dir.Join("a"));
  ASSERT_THAT((*file)->SyncAndClose(), IsOk());
  EXPECT_EQ(ReadFile(dir.Join("a")), "abcde");
  struct stat info;
  ASSERT_EQ(stat(dir.Join("a").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0644u);
}

TEST(OutputFileTest, AClosedFileRefusesMore) {
  ScratchDir dir;
  auto file = OutputFile::Create(dir.Join("a"), "feature file 'a'");
  ASSERT_THAT(file, IsOk());
  ASSERT_THAT((*file)->SyncAndClose(), IsOk());
  EXPECT_THAT((*file)->Append("x"),
              StatusIs(absl::StatusCode::kFailedPrecondition, "feature file 'a' is closed"));
  EXPECT_THAT((*file)->SyncAndClose(),
              StatusIs(absl::StatusCode::kFailedPrecondition, "feature file 'a' is closed"));
}

TEST(OutputFileTest, CreateRefusesAnExistingFileOrAMissingDirectory) {
  ScratchDir dir;
  WriteFile(dir.Join("a"), "kept");
  EXPECT_THAT(OutputFile::Create(dir.Join("a"), "feature file 'a'"),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       StartsWith("creating feature file 'a': File exists")));
  EXPECT_EQ(ReadFile(dir.Join("a")), "kept");
  EXPECT_THAT(OutputFile::Create(dir.Join("missing/a")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing/a")));
}

TEST(OutputFileTest, ATemporaryLivesNextToItsTarget) {
  ScratchDir dir;
  auto first = OutputFile::CreateTemporary(dir.Join("a.json"));
  auto second = OutputFile::CreateTemporary(dir.Join("a.json"));
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(second, IsOk());
  EXPECT_THAT((*first)->path(), StartsWith(dir.Join("a.json.partial-")));
  EXPECT_NE((*first)->path(), (*second)->path());
  struct stat info;
  ASSERT_EQ(stat((*first)->path().c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0644u);
  EXPECT_THAT(OutputFile::CreateTemporary(dir.Join("missing/a.json"), "job record"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("creating job record")));
}

TEST(InputFileTest, ReadsFrontToBackAndFailsPastTheEnd) {
  ScratchDir dir;
  WriteFile(dir.Join("a"), "abcdef");
  auto file = InputFile::Open(dir.Join("a"), "vectors file 'a'");
  ASSERT_THAT(file, IsOk());
  EXPECT_EQ((*file)->size(), 6);
  std::string data(4, '\0');
  ASSERT_THAT((*file)->ReadExactly(data.data(), 4), IsOk());
  EXPECT_EQ(data, "abcd");
  EXPECT_THAT((*file)->ReadExactly(data.data(), 4),
              StatusIs(absl::StatusCode::kInternal,
                       HasSubstr("reading vectors file 'a' (ended early)")));
}

TEST(InputFileTest, RefusesMissingFilesDirectoriesAndFifosWithoutWaiting) {
  ScratchDir dir;
  EXPECT_THAT(InputFile::Open(dir.Join("missing"), "token file 'missing'"),
              StatusIs(absl::StatusCode::kNotFound,
                       StartsWith("opening token file 'missing': No such file")));
  EXPECT_THAT(InputFile::Open(dir.path()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is not a regular file")));
  ASSERT_EQ(mkfifo(dir.Join("fifo").c_str(), 0600), 0);
  EXPECT_THAT(InputFile::Open(dir.Join("fifo")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("fifo"), HasSubstr("is not a regular file"))));
  EXPECT_THAT(InputFile::Open("/dev/zero"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is not a regular file")));
}

TEST(ReadSmallFileTest, ReadsUpToTheLimit) {
  ScratchDir dir;
  WriteFile(dir.Join("a"), "abcdef");
  EXPECT_THAT(ReadSmallFile(dir.Join("a"), 6), IsOkAndHolds("abcdef"));
  WriteFile(dir.Join("empty"), "");
  EXPECT_THAT(ReadSmallFile(dir.Join("empty"), 6), IsOkAndHolds(""));
}

TEST(ReadSmallFileTest, ALargerFileIsRefusedNamingBothSizes) {
  ScratchDir dir;
  WriteFile(dir.Join("a"), "abcdefg");
  EXPECT_THAT(ReadSmallFile(dir.Join("a"), 6, "--token_file 'a'"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--token_file 'a' has 7 bytes, more than the 6")));
}

TEST(ReadSmallFileTest, MissingFilesAndFifosFailNamingThem) {
  ScratchDir dir;
  EXPECT_THAT(ReadSmallFile(dir.Join("missing"), 6),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
  ASSERT_EQ(mkfifo(dir.Join("fifo").c_str(), 0600), 0);
  EXPECT_THAT(ReadSmallFile(dir.Join("fifo"), 6),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("fifo"), HasSubstr("is not a regular file"))));
}

}  // namespace
}  // namespace timbre
