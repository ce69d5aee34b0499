#include "client/npy_file.h"

#include <cstring>

#include "tests/test_support.h"

namespace timbre {
namespace {

using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;

std::string Floats(std::initializer_list<float> values) {
  std::string data(values.size() * 4, '\0');
  std::memcpy(data.data(), values.begin(), data.size());
  return data;
}

std::string Header(const std::string& dict) {
  std::string header = dict;
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  return out + header;
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
      Header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }") + Floats({7, 8}));
  auto read = ReadNpy(dir.Join("np.npy"));
  ASSERT_THAT(read, IsOk());
  EXPECT_EQ(read->shape, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(read->data, Floats({7, 8}));
}

TEST(NpyFileTest, RejectsWhatItCannotUse) {
  ScratchDir dir;
  EXPECT_THAT(ReadNpy(dir.Join("missing.npy")), StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.npy")));
  timbre::testing::WriteFile(dir.Join("text.npy"), "not numpy at all");
  EXPECT_THAT(ReadNpy(dir.Join("text.npy")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad magic")));
  timbre::testing::WriteFile(
      dir.Join("f8.npy"),
      Header("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }") + std::string(8, '\0'));
  EXPECT_THAT(ReadNpy(dir.Join("f8.npy")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dtype <f8")));
  timbre::testing::WriteFile(
      dir.Join("fortran.npy"),
      Header("{'descr': '<f4', 'fortran_order': True, 'shape': (1, 1), }") + Floats({1}));
  EXPECT_THAT(ReadNpy(dir.Join("fortran.npy")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("Fortran")));
  timbre::testing::WriteFile(
      dir.Join("short.npy"),
      Header("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 1), }") + Floats({1, 2}));
  EXPECT_THAT(ReadNpy(dir.Join("short.npy")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs 12 data bytes")));
  EXPECT_THAT(WriteNpy(dir.Join("bad.npy"), NpyArray{"<i4", {1}, std::string(4, '\0')}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("<i4")));
  EXPECT_THAT(WriteNpy(dir.Join("bad.npy"), NpyArray{"<f4", {2}, std::string(4, '\0')}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not match")));
}

}  // namespace
}  // namespace timbre
