// MemoryFile: contents read by path, whole replacements, modification times that always move
// forward, and the errors of creating and replacing one.
#include "server/security/memory_file.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::ReadFile;
using ::timbre::testing::StatusIs;

std::unique_ptr<MemoryFile> MakeFile(const std::string& contents) {
  auto file = MemoryFile::Create("timbre-test", contents);
  EXPECT_THAT(file, IsOk());
  return file.ok() ? *std::move(file) : nullptr;
}

int64_t ModificationTime(const std::string& path) {
  struct stat info;
  EXPECT_EQ(stat(path.c_str(), &info), 0) << path;
  return info.st_mtime;
}

TEST(MemoryFileTest, ItsPathOpensItsContents) {
  auto file = MakeFile("-----BEGIN CERTIFICATE-----\n");
  ASSERT_NE(file, nullptr);
  EXPECT_THAT(file->path(), HasSubstr("/proc/self/fd/"));
  EXPECT_EQ(ReadFile(file->path()), "-----BEGIN CERTIFICATE-----\n");
}

TEST(MemoryFileTest, ReplaceSwapsTheWholeContentsAndMovesTheTimeForward) {
  auto file = MakeFile("a much longer first version");
  ASSERT_NE(file, nullptr);
  const std::string path = file->path();
  int64_t last = ModificationTime(path);
  // Several replacements within one second still get distinct, increasing times.
  for (const std::string contents : {"second", "", "third"}) {
    ASSERT_THAT(file->Replace(contents), IsOk());
    EXPECT_EQ(file->path(), path);
    EXPECT_EQ(ReadFile(path), contents);
    const int64_t mtime = ModificationTime(path);
    EXPECT_GT(mtime, last) << contents;
    last = mtime;
  }
}

TEST(MemoryFileTest, AReaderKeepsTheContentsItOpened) {
  auto file = MakeFile("old");
  ASSERT_NE(file, nullptr);
  std::ifstream reader(file->path());
  ASSERT_TRUE(reader.is_open());
  ASSERT_THAT(file->Replace("new"), IsOk());
  std::string line;
  std::getline(reader, line);
  EXPECT_EQ(line, "old");
  EXPECT_EQ(ReadFile(file->path()), "new");
}

TEST(MemoryFileTest, ANameTheKernelRefusesFailsCreate) {
  // memfd_create takes names of at most 249 bytes.
  EXPECT_THAT(MemoryFile::Create(std::string(300, 'x'), "contents"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("creating memory file")));
}

TEST(MemoryFileTest, AFailedReplaceKeepsTheContents) {
  auto file = MakeFile("kept");
  ASSERT_NE(file, nullptr);
  const int64_t mtime = ModificationTime(file->path());
  // A file-size limit makes the write of the new contents fail (EFBIG; SIGXFSZ ignored).
  struct rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  struct rlimit small = saved;
  small.rlim_cur = 4;
  void (*saved_handler)(int) = signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  const absl::Status replaced = file->Replace("longer than four bytes");
  setrlimit(RLIMIT_FSIZE, &saved);
  signal(SIGXFSZ, saved_handler);
  EXPECT_THAT(replaced,
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("writing memory file")));
  EXPECT_EQ(ReadFile(file->path()), "kept");
  EXPECT_EQ(ModificationTime(file->path()), mtime);
}

}  // namespace
}  // namespace timbre
