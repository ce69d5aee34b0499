#include "tests/support/feature_set_test_support.h"

#include <filesystem>
#include <limits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/io/sha256.h"

namespace timbre::testing {

namespace fs = std::filesystem;

using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<float> RowValues(int64_t rows, int dim, float base) {
  std::vector<float> values(static_cast<size_t>(rows) * dim);
  for (int64_t r = 0; r < rows; ++r) {
    for (int c = 0; c < dim; ++c) values[r * dim + c] = base + (r % 64) + (c % 16) * 0.25f;
  }
  return values;
}

std::string NpyBytes(DType dtype, int64_t rows, int dim, const std::vector<float>& values) {
  const std::string descr = dtype == DType::kFloat16 ? "<f2" : "<f4";
  return NpyHeaderBytes(absl::StrCat("{'descr': '", descr, "', 'fortran_order': False, 'shape': (",
                                     rows, ", ", dim, "), }")) +
         EncodeFrames(dtype, values);
}

std::string Float32Npy(int64_t rows, int dim, float base) {
  return NpyBytes(DType::kFloat32, rows, dim, RowValues(rows, dim, base));
}

absl::StatusOr<FeatureSetInfo> Upload(FeatureSetStore& store, const std::vector<NamedFile>& files,
                                      size_t chunk) {
  absl::StatusOr<std::unique_ptr<FeatureSetUpload>> upload = store.BeginUpload();
  if (!upload.ok()) return upload.status();
  for (const NamedFile& file : files) {
    absl::Status status = (*upload)->BeginFile(file.name, static_cast<int64_t>(file.bytes.size()),
                                               Sha256::HexOf(file.bytes));
    for (size_t at = 0; status.ok() && at < file.bytes.size(); at += chunk) {
      status = (*upload)->Append(absl::string_view(file.bytes).substr(at, chunk));
    }
    if (!status.ok()) return status;
  }
  return (*upload)->Finish();
}

std::vector<std::string> HiddenEntries(const std::string& root) {
  std::vector<std::string> hidden;
  for (const auto& entry : fs::directory_iterator(root)) {
    const std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, ".")) hidden.push_back(name);
  }
  return hidden;
}

std::vector<BadFeatureFile> BadFeatureFiles() {
  auto header = [](const std::string& descr, const std::string& fortran, const std::string& shape) {
    return NpyHeaderBytes(absl::StrCat("{'descr': '", descr, "', 'fortran_order': ", fortran,
                                       ", 'shape': ", shape, ", }"));
  };
  std::vector<float> nan_values = RowValues(5, 768, 0);
  nan_values[3 * 768 + 7] = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> inf_values = RowValues(5, 256, 0);
  inf_values[4 * 256 + 0] = -std::numeric_limits<float>::infinity();
  std::vector<float> half_inf_values = RowValues(3, 768, 0);
  half_inf_values[1 * 768 + 2] = 1e6f;  // beyond float16: stored as +inf
  return {
      {"bad magic", "\x93NUMPX" + Float32Npy(1, 768, 0).substr(6), {"bad magic"}},
      {"text", "not numpy at all", {"bad magic"}},
      {"bad header",
       NpyHeaderBytes("{'descr': '<f4', 'shape': (1, 768), }") + std::string(3072, '\0'),
       {"lacks"}},
      {"truncated header", Float32Npy(1, 768, 0).substr(0, 30), {"truncated header"}},
      {"float64", header("<f8", "False", "(1, 768)") + std::string(768 * 8, '\0'), {"dtype <f8"}},
      {"big-endian",
       header(">f4", "False", "(1, 768)") + std::string(768 * 4, '\0'),
       {"dtype >f4"}},
      {"Fortran order",
       header("<f4", "True", "(1, 768)") + std::string(768 * 4, '\0'),
       {"Fortran"}},
      {"3-D",
       header("<f4", "False", "(1, 2, 768)") + std::string(2 * 768 * 4, '\0'),
       {"(1, 2, 768)", "not 2-D"}},
      {"1-D", header("<f4", "False", "(768,)") + std::string(768 * 4, '\0'), {"not 2-D"}},
      {"dim 512", header("<f4", "False", "(2, 512)") + std::string(2 * 512 * 4, '\0'), {"dim 512"}},
      {"zero rows", header("<f4", "False", "(0, 768)"), {"no rows"}},
      {"short data",
       Float32Npy(2, 768, 0).substr(0, 128 + 768 * 4 + 10),
       {"needs 6144 data bytes"}},
      {"NaN", NpyBytes(DType::kFloat32, 5, 768, nan_values), {"row 3 ", "nan", "column 7"}},
      {"infinity", NpyBytes(DType::kFloat32, 5, 256, inf_values), {"row 4 ", "inf", "column 0"}},
      {"float16 infinity",
       NpyBytes(DType::kFloat16, 3, 768, half_inf_values),
       {"row 1 ", "inf", "column 2"}},
  };
}

void RecordingControl::Progress(double fraction, absl::string_view message) {
  fractions.push_back(fraction);
  messages.emplace_back(message);
  if (static_cast<int>(fractions.size()) == cancel_after_reports_) cancelled_ = true;
}

void FeatureSetStoreFixture::SetUp() {
  fs::create_directories(imports_.path());
  store_ = Open();
}

std::unique_ptr<FeatureSetStore> FeatureSetStoreFixture::Open() {
  FeatureSetStore::Options options;
  options.root = root();
  options.import_root = imports_.path();
  absl::StatusOr<std::unique_ptr<FeatureSetStore>> store = FeatureSetStore::Create(options);
  EXPECT_THAT(store, IsOk());
  return store.ok() ? *std::move(store) : nullptr;
}

std::string FeatureSetStoreFixture::ImportPath(const std::string& relative) const {
  return absl::StrCat(fs::canonical(imports_.path()).string(), "/", relative);
}

void FeatureSetStoreFixture::ExpectUploadFails(const std::vector<NamedFile>& files,
                                               absl::StatusCode code,
                                               const std::vector<std::string>& parts) {
  absl::StatusOr<FeatureSetInfo> info = Upload(*store_, files);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), code) << info.status();
  for (const std::string& part : parts) {
    EXPECT_THAT(std::string(info.status().message()), HasSubstr(part));
  }
  EXPECT_THAT(HiddenEntries(root()), IsEmpty());
  EXPECT_THAT(store_->List(), IsEmpty());
}

}  // namespace timbre::testing
