#include "server/io/vectors_file.h"

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::ListDir;
using ::timbre::testing::ReadFile;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;
using ::timbre::testing::WriteFile;

constexpr int kDim = 16;
constexpr int64_t kRows = 40;

// [rows, kDim] distinct values.
std::vector<float> Vectors(int64_t rows) {
  std::vector<float> values(rows * kDim);
  for (size_t i = 0; i < values.size(); ++i) values[i] = 0.25f * i - 3.0f;
  return values;
}

class VectorsFileTest : public ::testing::Test {
 protected:
  ScratchDir scratch_;
};

TEST_F(VectorsFileTest, WriteThenReadRoundTrips) {
  const std::vector<float> vectors = Vectors(kRows);
  const std::string path = scratch_.Join("vectors.f32");
  ASSERT_THAT(WriteVectorsFile(path, vectors.data(), kRows, kDim), IsOk());
  // Raw float32 in row order, no header.
  const std::string bytes = ReadFile(path);
  ASSERT_EQ(bytes.size(), size_t{kRows} * kDim * sizeof(float));
  EXPECT_EQ(std::memcmp(bytes.data(), vectors.data(), bytes.size()), 0);
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
            std::filesystem::perms(0644));

  absl::StatusOr<std::vector<float>> read = ReadVectorsFile(path, kRows, kDim);
  ASSERT_THAT(read, IsOk());
  EXPECT_EQ(*read, vectors);
  EXPECT_THAT(ListDir(scratch_.path()), ElementsAre("vectors.f32"));
}

TEST_F(VectorsFileTest, RewritingReplacesTheFile) {
  const std::vector<float> vectors = Vectors(kRows);
  const std::string path = scratch_.Join("vectors.f32");
  ASSERT_THAT(WriteVectorsFile(path, vectors.data(), kRows, kDim), IsOk());
  ASSERT_THAT(WriteVectorsFile(path, vectors.data(), 1, kDim), IsOk());
  EXPECT_EQ(ReadFile(path).size(), kDim * sizeof(float));
  ASSERT_THAT(WriteVectorsFile(path, nullptr, 0, kDim), IsOk());
  EXPECT_EQ(ReadFile(path).size(), 0u);
  absl::StatusOr<std::vector<float>> read = ReadVectorsFile(path, 0, kDim);
  ASSERT_THAT(read, IsOk());
  EXPECT_TRUE(read->empty());
}

TEST_F(VectorsFileTest, WriteRejectsBadArguments) {
  const std::vector<float> vectors = Vectors(1);
  const std::string path = scratch_.Join("vectors.f32");
  EXPECT_THAT(WriteVectorsFile(path, vectors.data(), -1, kDim),
              StatusIs(absl::StatusCode::kInvalidArgument, AllOf(HasSubstr(path),
                                                                 HasSubstr("count >= 0 (is -1)"))));
  EXPECT_THAT(WriteVectorsFile(path, vectors.data(), 1, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dim >= 1 (is 0)")));
  EXPECT_THAT(WriteVectorsFile(path, nullptr, 1, kDim),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(path)));
  EXPECT_THAT(ListDir(scratch_.path()), ::testing::IsEmpty());
}

TEST_F(VectorsFileTest, WriteFailureLeavesNothingBehind) {
  const std::vector<float> vectors = Vectors(kRows);
  // A missing directory is the server's problem, not the caller's: INTERNAL, not NOT_FOUND.
  const std::string missing_dir = scratch_.Join("no/such/dir/vectors.f32");
  EXPECT_THAT(WriteVectorsFile(missing_dir, vectors.data(), kRows, kDim),
              StatusIs(absl::StatusCode::kInternal,
                       AllOf(HasSubstr(missing_dir), HasSubstr("No such file"))));
  // The data is written, but the final rename fails: the target is a directory.
  const std::string dir = scratch_.Join("target");
  ASSERT_TRUE(std::filesystem::create_directory(dir));
  EXPECT_THAT(WriteVectorsFile(dir, vectors.data(), kRows, kDim),
              StatusIs(absl::StatusCode::kInternal, HasSubstr(dir)));
  EXPECT_THAT(ListDir(scratch_.path()), ElementsAre("target"));
}

TEST_F(VectorsFileTest, ReadMissingFileIsNotFound) {
  const std::string path = scratch_.Join("missing.f32");
  EXPECT_THAT(ReadVectorsFile(path, kRows, kDim),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr(absl::StrCat("vectors file '", path, "'")),
                             HasSubstr("No such file"))));
}

TEST_F(VectorsFileTest, ReadDirectoryIsInvalidArgument) {
  EXPECT_THAT(ReadVectorsFile(scratch_.path(), kRows, kDim),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(scratch_.path()), HasSubstr("not a regular file"))));
}

TEST_F(VectorsFileTest, ReadWrongSizeNamesBothByteCounts) {
  const std::vector<float> vectors = Vectors(kRows);
  const std::string path = scratch_.Join("short.f32");
  ASSERT_THAT(WriteVectorsFile(path, vectors.data(), kRows - 1, kDim), IsOk());
  EXPECT_THAT(ReadVectorsFile(path, kRows, kDim),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path),
                             HasSubstr(absl::StrCat((kRows - 1) * kDim * 4, " bytes")),
                             HasSubstr(absl::StrCat(kRows, " vectors of dim ", kDim)),
                             HasSubstr(absl::StrCat(kRows * kDim * 4, " bytes")))));
  // The same bytes are fine as another shape with as many values.
  EXPECT_THAT(ReadVectorsFile(path, (kRows - 1) * 2, kDim / 2), IsOk());
}

TEST_F(VectorsFileTest, ReadRejectsBadShape) {
  const std::string path = scratch_.Join("empty.f32");
  WriteFile(path, "");
  EXPECT_THAT(ReadVectorsFile(path, -1, kDim),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("count >= 0 (is -1)")));
  EXPECT_THAT(ReadVectorsFile(path, 0, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dim >= 1 (is 0)")));
}

TEST_F(VectorsFileTest, ReadNonFiniteValueNamesRowAndColumn) {
  for (float bad : {std::numeric_limits<float>::quiet_NaN(),
                    std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    SCOPED_TRACE(bad);
    std::vector<float> vectors = Vectors(kRows);
    vectors[7 * kDim + 3] = bad;
    const std::string path = scratch_.Join("bad.f32");
    ASSERT_THAT(WriteVectorsFile(path, vectors.data(), kRows, kDim), IsOk());
    EXPECT_THAT(ReadVectorsFile(path, kRows, kDim),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr(path), HasSubstr("NaN or infinite"),
                               HasSubstr("row 7, column 3"))));
  }
}

}  // namespace
}  // namespace timbre
