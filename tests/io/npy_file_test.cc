#include "server/io/npy_file.h"

#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <vector>

#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::NpyHeaderBytes;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;

std::string Floats(std::initializer_list<float> values) {
  std::string data(values.size() * 4, '\0');
  std::memcpy(data.data(), values.begin(), data.size());
  return data;
}

TEST(NpyFileTest, RoundTripsFloat32AndFloat16) {
  ScratchDir dir;
  NpyArray array{"<f4", {2, 3}, Floats({1, 2, 3, 4, 5, 6})};
  ASSERT_THAT(WriteNpy(dir.Join("a.npy"), array), IsOk());
  auto read = ReadNpy(dir.Join("a.npy"));
  ASSERT_THAT(read, IsOk());
  EXPECT_EQ(read->descr, "<f4");
  EXPECT_EQ(read->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(read->data, array.data);
  // The data starts on a 64-byte boundary, as numpy writes it.
  EXPECT_EQ(timbre::testing::ReadFile(dir.Join("a.npy")).size() % 64, 24u % 64);

  NpyArray half{"<f2", {1, 2}, std::string("\x00\x3c\x00\xc0", 4)};
  ASSERT_THAT(WriteNpy(dir.Join("h.npy"), half), IsOk());
  auto read_half = ReadNpy(dir.Join("h.npy"));
  ASSERT_THAT(read_half, IsOk());
  EXPECT_EQ(read_half->descr, "<f2");
  EXPECT_EQ(read_half->data, half.data);
}

TEST(NpyFileTest, ReadsNumpyStyleHeaders) {
  ScratchDir dir;
  timbre::testing::WriteFile(
      dir.Join("np.npy"),
      NpyHeaderBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }") +
          Floats({7, 8}));
  auto read = ReadNpy(dir.Join("np.npy"));
  ASSERT_THAT(read, IsOk());
  EXPECT_EQ(read->shape, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(read->data, Floats({7, 8}));
}

TEST(NpyFileTest, RejectsWhatItCannotUse) {
  ScratchDir dir;
  EXPECT_THAT(ReadNpy(dir.Join("missing.npy")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.npy")));
  timbre::testing::WriteFile(dir.Join("text.npy"), "not numpy at all");
  EXPECT_THAT(ReadNpy(dir.Join("text.npy")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad magic")));
  timbre::testing::WriteFile(
      dir.Join("f8.npy"),
      NpyHeaderBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }") +
          std::string(8, '\0'));
  EXPECT_THAT(ReadNpy(dir.Join("f8.npy")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dtype <f8")));
  timbre::testing::WriteFile(
      dir.Join("fortran.npy"),
      NpyHeaderBytes("{'descr': '<f4', 'fortran_order': True, 'shape': (1, 1), }") + Floats({1}));
  EXPECT_THAT(ReadNpy(dir.Join("fortran.npy")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("Fortran")));
  timbre::testing::WriteFile(
      dir.Join("short.npy"),
      NpyHeaderBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 1), }") +
          Floats({1, 2}));
  EXPECT_THAT(ReadNpy(dir.Join("short.npy")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs 12 data bytes")));
  EXPECT_THAT(WriteNpy(dir.Join("bad.npy"), NpyArray{"<i4", {1}, std::string(4, '\0')}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("<i4")));
  EXPECT_THAT(WriteNpy(dir.Join("bad.npy"), NpyArray{"<f4", {2}, std::string(4, '\0')}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not match")));
}

TEST(NpyFileTest, WritingReplacesTheFileWholeAndFailuresLeaveNothing) {
  ScratchDir dir;
  timbre::testing::WriteFile(dir.Join("out.npy"), std::string(4096, 'x'));
  ASSERT_THAT(WriteNpy(dir.Join("out.npy"), NpyArray{"<f4", {1, 2}, Floats({7, 8})}), IsOk());
  auto read = ReadNpy(dir.Join("out.npy"));
  ASSERT_THAT(read, IsOk());
  EXPECT_EQ(read->data, Floats({7, 8}));
  EXPECT_THAT(WriteNpy(dir.Join("missing/out.npy"), NpyArray{"<f4", {1}, Floats({1})}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing/out.npy")));
  EXPECT_THAT(timbre::testing::ListDir(dir.path()), ElementsAre("out.npy"));
}

TEST(NpyFileTest, ReadsJustTheHeader) {
  ScratchDir dir;
  const std::string v1 =
      NpyHeaderBytes("{'descr': '<f8', 'fortran_order': True, 'shape': (3, 2), }");
  timbre::testing::WriteFile(dir.Join("v1.npy"), v1 + std::string(48, '\0'));
  auto header = ReadNpyHeader(dir.Join("v1.npy"));
  ASSERT_THAT(header, IsOk());
  EXPECT_EQ(header->descr, "<f8");
  EXPECT_TRUE(header->fortran_order);
  EXPECT_THAT(header->shape, ElementsAre(3, 2));
  EXPECT_EQ(header->data_offset, static_cast<int64_t>(v1.size()));

  // Format 2.0 has a 4-byte header length.
  const std::string dict = "{'descr': '<f2', 'fortran_order': False, 'shape': (), }\n";
  std::string v2("\x93NUMPY\x02\x00", 8);
  v2.push_back(static_cast<char>(dict.size()));
  v2.append(3, '\0');
  timbre::testing::WriteFile(dir.Join("v2.npy"), v2 + dict + std::string(2, '\0'));
  header = ReadNpyHeader(dir.Join("v2.npy"));
  ASSERT_THAT(header, IsOk());
  EXPECT_EQ(header->descr, "<f2");
  EXPECT_FALSE(header->fortran_order);
  EXPECT_TRUE(header->shape.empty());
  EXPECT_EQ(header->data_offset, static_cast<int64_t>(12 + dict.size()));
}

TEST(NpyFileTest, HeaderErrorsNameTheFile) {
  ScratchDir dir;
  EXPECT_THAT(ReadNpyHeader(dir.Join("missing.npy")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.npy")));
  EXPECT_THAT(ReadNpyHeader(dir.path()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a regular file")));
  // A FIFO named like a feature file is refused at once: opening it does not wait for a writer.
  ASSERT_EQ(mkfifo(dir.Join("fifo.npy").c_str(), 0600), 0);
  EXPECT_THAT(ReadNpyHeader(dir.Join("fifo.npy")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a regular file")));
  EXPECT_THAT(ReadNpy(dir.Join("fifo.npy")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a regular file")));
  timbre::testing::WriteFile(dir.Join("cut.npy"),
                             NpyHeaderBytes("{'descr': '<f4', }").substr(0, 20));
  EXPECT_THAT(ReadNpyHeader(dir.Join("cut.npy")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("cut.npy"), HasSubstr("truncated header"))));
  timbre::testing::WriteFile(dir.Join("keys.npy"), NpyHeaderBytes("{'descr': '<f4', }"));
  EXPECT_THAT(ReadNpyHeader(dir.Join("keys.npy")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lacks")));
  timbre::testing::WriteFile(
      dir.Join("shape.npy"),
      NpyHeaderBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }"));
  EXPECT_THAT(ReadNpyHeader(dir.Join("shape.npy")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad shape")));
  timbre::testing::WriteFile(dir.Join("v9.npy"), std::string("\x93NUMPY\x09\x00\x00\x00", 10));
  EXPECT_THAT(ReadNpyHeader(dir.Join("v9.npy")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("version 9")));
}

TEST(NpyRowReaderTest, ReadsFloat32RowsInBlocksAndDigestsTheWholeFile) {
  ScratchDir dir;
  ASSERT_THAT(WriteNpy(dir.Join("a.npy"), NpyArray{"<f4", {3, 2}, Floats({1, 2, 3, 4, 5, 6})}),
              IsOk());
  Sha256 digest;
  auto reader = NpyRowReader::Open(dir.Join("a.npy"), {"a.npy", &digest});
  ASSERT_THAT(reader, IsOk());
  EXPECT_EQ((*reader)->rows(), 3);
  EXPECT_EQ((*reader)->row_size(), 2);
  EXPECT_EQ((*reader)->file_bytes(),
            static_cast<int64_t>(timbre::testing::ReadFile(dir.Join("a.npy")).size()));
  std::vector<float> first(4), second(2);
  ASSERT_THAT((*reader)->ReadRows(2, first.data()), IsOk());
  EXPECT_EQ((*reader)->rows_read(), 2);
  ASSERT_THAT((*reader)->ReadRows(1, second.data()), IsOk());
  EXPECT_THAT(first, ElementsAre(1, 2, 3, 4));
  EXPECT_THAT(second, ElementsAre(5, 6));
  EXPECT_EQ(digest.HexDigest(), Sha256::HexOf(timbre::testing::ReadFile(dir.Join("a.npy"))));
  EXPECT_THAT((*reader)->ReadRows(1, second.data()),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("0 remain")));
}

TEST(NpyRowReaderTest, WidensFloat16Exactly) {
  ScratchDir dir;
  // 1, -2, 65504, 2^-24 (the smallest subnormal).
  const std::string halves("\x00\x3c\x00\xc0\xff\x7b\x01\x00", 8);
  ASSERT_THAT(WriteNpy(dir.Join("h.npy"), NpyArray{"<f2", {4}, halves}), IsOk());
  auto reader = NpyRowReader::Open(dir.Join("h.npy"));
  ASSERT_THAT(reader, IsOk());
  EXPECT_EQ((*reader)->row_size(), 1);
  std::vector<float> values(4);
  ASSERT_THAT((*reader)->ReadRows(4, values.data()), IsOk());
  EXPECT_THAT(values, ElementsAreArray({1.0f, -2.0f, 65504.0f, std::ldexp(1.0f, -24)}));
}

TEST(NpyRowReaderTest, RejectsWhatItCannotReadNamingTheLabel) {
  ScratchDir dir;
  timbre::testing::WriteFile(
      dir.Join("f8.npy"),
      NpyHeaderBytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }") +
          std::string(8, '\0'));
  EXPECT_THAT(NpyRowReader::Open(dir.Join("f8.npy"), {"upload 'x.npy'", nullptr}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("upload 'x.npy'"), HasSubstr("dtype <f8"))));
  timbre::testing::WriteFile(
      dir.Join("scalar.npy"),
      NpyHeaderBytes("{'descr': '<f4', 'fortran_order': False, 'shape': (), }") + Floats({1}));
  EXPECT_THAT(NpyRowReader::Open(dir.Join("scalar.npy")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("0-d")));
  timbre::testing::WriteFile(
      dir.Join("huge.npy"),
      NpyHeaderBytes(
          "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }"));
  EXPECT_THAT(NpyRowReader::Open(dir.Join("huge.npy")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("too large")));
}

TEST(NpyRowReaderTest, FileThatShrankAfterOpenFails) {
  ScratchDir dir;
  ASSERT_THAT(WriteNpy(dir.Join("a.npy"), NpyArray{"<f4", {2, 2}, Floats({1, 2, 3, 4})}), IsOk());
  auto reader = NpyRowReader::Open(dir.Join("a.npy"));
  ASSERT_THAT(reader, IsOk());
  std::filesystem::resize_file(dir.Join("a.npy"), (*reader)->header().data_offset + 4);
  std::vector<float> values(4);
  EXPECT_THAT((*reader)->ReadRows(2, values.data()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ended early")));
}

}  // namespace
}  // namespace timbre
