#include "server/core/feature_set_store.h"

#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/core/float16.h"
#include "server/core/frame_codec.h"
#include "server/core/npy_file.h"
#include "server/core/sha256.h"
#include "tests/test_support.h"

namespace timbre {
namespace {

namespace fs = std::filesystem;

using ::testing::_;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::timbre::testing::IsOk;
using ::timbre::testing::NpyHeaderBytes;
using ::timbre::testing::ReadFile;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;
using ::timbre::testing::WriteFile;

constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;

// Values that float16 holds exactly, distinct per (file, row, column): base + row + column / 4.
std::vector<float> RowValues(int64_t rows, int dim, float base) {
  std::vector<float> values(static_cast<size_t>(rows) * dim);
  for (int64_t r = 0; r < rows; ++r) {
    for (int c = 0; c < dim; ++c) values[r * dim + c] = base + (r % 64) + (c % 16) * 0.25f;
  }
  return values;
}

// The bytes of a .npy file of `values` shaped [rows, dim], as numpy writes it.
std::string NpyBytes(DType dtype, int64_t rows, int dim, const std::vector<float>& values) {
  const std::string descr = dtype == DType::kFloat16 ? "<f2" : "<f4";
  return NpyHeaderBytes(absl::StrCat("{'descr': '", descr, "', 'fortran_order': False, 'shape': (",
                                     rows, ", ", dim, "), }")) +
         EncodeFrames(dtype, values);
}

std::string Float32Npy(int64_t rows, int dim, float base) {
  return NpyBytes(DType::kFloat32, rows, dim, RowValues(rows, dim, base));
}

struct NamedFile {
  std::string name;
  std::string bytes;
};

// Uploads `files` in chunks of `chunk` bytes announcing their true sizes and digests.
absl::StatusOr<FeatureSetInfo> Upload(FeatureSetStore& store, const std::vector<NamedFile>& files,
                                      size_t chunk = 1 << 16) {
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

// Hidden entries of the store root: staging and deleting directories.
std::vector<std::string> HiddenEntries(const std::string& root) {
  std::vector<std::string> hidden;
  for (const auto& entry : fs::directory_iterator(root)) {
    const std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, ".")) hidden.push_back(name);
  }
  return hidden;
}

// Records progress and cancels after a given number of reports. LoadRows reports from the calling
// thread, so the vectors need no lock.
class RecordingControl : public BuildControl {
 public:
  explicit RecordingControl(int cancel_after_reports = -1)
      : cancel_after_reports_(cancel_after_reports) {}

  bool cancelled() const override { return cancelled_; }
  void Progress(double fraction, absl::string_view message) override {
    fractions.push_back(fraction);
    messages.emplace_back(message);
    if (static_cast<int>(fractions.size()) == cancel_after_reports_) cancelled_ = true;
  }
  void Cancel() { cancelled_ = true; }

  std::vector<double> fractions;
  std::vector<std::string> messages;

 private:
  const int cancel_after_reports_;
  std::atomic<bool> cancelled_{false};
};

class FeatureSetStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(imports_.path());
    store_ = Open();
  }

  std::unique_ptr<FeatureSetStore> Open() {
    FeatureSetStore::Options options;
    options.root = root();
    options.import_root = imports_.path();
    absl::StatusOr<std::unique_ptr<FeatureSetStore>> store = FeatureSetStore::Create(options);
    EXPECT_THAT(store, IsOk());
    return store.ok() ? *std::move(store) : nullptr;
  }

  std::string root() const { return dir_.Join("sets"); }

  // The absolute path, symlinks resolved, of `relative` under the import root.
  std::string ImportPath(const std::string& relative) const {
    return absl::StrCat(fs::canonical(imports_.path()).string(), "/", relative);
  }

  // Expects that an upload of `files` fails with `code` and a message holding every one of
  // `parts`, and that it left nothing behind.
  void ExpectUploadFails(const std::vector<NamedFile>& files, absl::StatusCode code,
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

  ScratchDir dir_;
  ScratchDir imports_;
  std::unique_ptr<FeatureSetStore> store_;
};

TEST_F(FeatureSetStoreTest, UploadLoadsRowsInByteWiseNameOrder) {
  const std::vector<NamedFile> files = {{"a.npy", Float32Npy(2, 768, 0)},
                                        {"2.npy", Float32Npy(1, 768, 100)},
                                        {"10.npy", Float32Npy(3, 768, 200)}};
  absl::StatusOr<FeatureSetInfo> info = Upload(*store_, files);
  ASSERT_THAT(info, IsOk());
  EXPECT_THAT(info->id, ::testing::MatchesRegex("fs-[0-9a-f]{16}"));
  EXPECT_EQ(info->source, kUploadSource);
  ASSERT_EQ(info->files.size(), 3u);
  EXPECT_EQ(info->files[0].name, "10.npy");
  EXPECT_EQ(info->files[1].name, "2.npy");
  EXPECT_EQ(info->files[2].name, "a.npy");
  EXPECT_EQ(info->files[0].rows, 3);
  EXPECT_EQ(info->files[0].dim, 768);
  EXPECT_EQ(info->files[0].dtype, "float32");
  EXPECT_EQ(info->files[0].bytes, static_cast<int64_t>(files[2].bytes.size()));
  EXPECT_EQ(info->files[0].sha256, Sha256::HexOf(files[2].bytes));
  EXPECT_EQ(info->rows, 6);
  EXPECT_EQ(info->dim, 768);
  EXPECT_EQ(info->bytes, static_cast<int64_t>(files[0].bytes.size() + files[1].bytes.size() +
                                              files[2].bytes.size()));

  absl::StatusOr<FrameMatrix> rows = store_->LoadRows(info->id, nullptr);
  ASSERT_THAT(rows, IsOk());
  EXPECT_EQ(rows->rows, 6);
  EXPECT_EQ(rows->dim, 768);
  std::vector<float> expected = RowValues(3, 768, 200);
  for (const auto& [count, base] : {std::pair<int, float>{1, 100}, {2, 0}}) {
    const std::vector<float> more = RowValues(count, 768, base);
    expected.insert(expected.end(), more.begin(), more.end());
  }
  EXPECT_EQ(rows->values, expected);
  EXPECT_THAT(HiddenEntries(root()), IsEmpty());
}

TEST_F(FeatureSetStoreTest, Float16RowsAreWidenedExactly) {
  const std::vector<uint16_t> halves = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x3555, 0x8000};
  std::string data;
  std::vector<float> widened;
  for (int i = 0; i < 256 * 2; ++i) {
    const uint16_t half = halves[i % halves.size()];
    data.append(reinterpret_cast<const char*>(&half), 2);
    widened.push_back(HalfToFloat(half));
  }
  const std::string bytes =
      NpyHeaderBytes("{'descr': '<f2', 'fortran_order': False, 'shape': (2, 256), }") + data;
  absl::StatusOr<FeatureSetInfo> info = Upload(*store_, {{"half.npy", bytes}});
  ASSERT_THAT(info, IsOk());
  EXPECT_EQ(info->files[0].dtype, "float16");
  EXPECT_EQ(info->dim, 256);
  absl::StatusOr<FrameMatrix> rows = store_->LoadRows(info->id, nullptr);
  ASSERT_THAT(rows, IsOk());
  ASSERT_EQ(rows->values.size(), widened.size());
  for (size_t i = 0; i < widened.size(); ++i) {
    uint32_t got, want;
    std::memcpy(&got, &rows->values[i], 4);
    std::memcpy(&want, &widened[i], 4);
    ASSERT_EQ(got, want) << "value " << i;  // bit for bit, -0 included
  }
}

TEST_F(FeatureSetStoreTest, ManyChunksEqualOneChunk) {
  const std::vector<NamedFile> files = {
      {"0_0.npy", Float32Npy(5, 768, 1)},
      {"0_1.npy", NpyBytes(DType::kFloat16, 4, 768, RowValues(4, 768, 2))}};
  absl::StatusOr<FeatureSetInfo> whole = Upload(*store_, files, 1 << 30);
  absl::StatusOr<FeatureSetInfo> pieces = Upload(*store_, files, 7);
  ASSERT_THAT(whole, IsOk());
  ASSERT_THAT(pieces, IsOk());
  EXPECT_NE(whole->id, pieces->id);
  ASSERT_EQ(whole->files.size(), pieces->files.size());
  for (size_t i = 0; i < whole->files.size(); ++i) {
    EXPECT_EQ(whole->files[i].sha256, pieces->files[i].sha256);
    EXPECT_EQ(whole->files[i].bytes, pieces->files[i].bytes);
  }
  absl::StatusOr<FrameMatrix> a = store_->LoadRows(whole->id, nullptr);
  absl::StatusOr<FrameMatrix> b = store_->LoadRows(pieces->id, nullptr);
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_EQ(a->values, b->values);
}

TEST_F(FeatureSetStoreTest, LargeFileInManyChunksLoadsWithProgress) {
  // 6000 x 768 float32: about 18 MB in 282 chunks of 64 KiB; read back in several blocks.
  const std::string bytes = Float32Npy(6000, 768, 3);
  absl::StatusOr<FeatureSetInfo> info = Upload(*store_, {{"total_fea.npy", bytes}}, 1 << 16);
  ASSERT_THAT(info, IsOk());
  EXPECT_EQ(info->rows, 6000);
  RecordingControl control;
  absl::StatusOr<FrameMatrix> rows = store_->LoadRows(info->id, &control);
  ASSERT_THAT(rows, IsOk());
  EXPECT_EQ(rows->values, RowValues(6000, 768, 3));
  ASSERT_GE(control.fractions.size(), 3u);
  EXPECT_TRUE(std::is_sorted(control.fractions.begin(), control.fractions.end()));
  EXPECT_EQ(control.fractions.back(), 1.0);
  EXPECT_THAT(control.messages.front(), HasSubstr("feature file 1 of 1 'total_fea.npy'"));
}

TEST_F(FeatureSetStoreTest, RestartedStoreListsTheSameSets) {
  absl::StatusOr<FeatureSetInfo> uploaded = Upload(*store_, {{"a.npy", Float32Npy(2, 256, 0)}});
  ASSERT_THAT(uploaded, IsOk());
  WriteFile(imports_.Join("speaker/0.npy"), Float32Npy(3, 768, 5));
  absl::StatusOr<FeatureSetInfo> imported = store_->ImportDirectory("speaker");
  ASSERT_THAT(imported, IsOk());
  const std::vector<FeatureSetInfo> before = store_->List();
  ASSERT_EQ(before.size(), 2u);

  store_.reset();
  store_ = Open();
  ASSERT_NE(store_, nullptr);
  const std::vector<FeatureSetInfo> after = store_->List();
  ASSERT_EQ(after.size(), 2u);
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].id, before[i].id);
    EXPECT_EQ(after[i].source, before[i].source);
    EXPECT_EQ(after[i].rows, before[i].rows);
    EXPECT_EQ(after[i].dim, before[i].dim);
    EXPECT_EQ(after[i].bytes, before[i].bytes);
    EXPECT_EQ(after[i].created_at, before[i].created_at);
    ASSERT_EQ(after[i].files.size(), 1u);
    EXPECT_EQ(after[i].files[0].sha256, before[i].files[0].sha256);
  }
  absl::StatusOr<FrameMatrix> rows = store_->LoadRows(imported->id, nullptr);
  ASSERT_THAT(rows, IsOk());
  EXPECT_EQ(rows->values, RowValues(3, 768, 5));
}

TEST_F(FeatureSetStoreTest, ListsOldestFirstAndDeletes) {
  absl::StatusOr<FeatureSetInfo> first = Upload(*store_, {{"a.npy", Float32Npy(1, 768, 0)}});
  absl::StatusOr<FeatureSetInfo> second = Upload(*store_, {{"b.npy", Float32Npy(1, 768, 0)}});
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(second, IsOk());
  std::vector<std::string> ids;
  for (const FeatureSetInfo& info : store_->List()) ids.push_back(info.id);
  EXPECT_THAT(ids, ElementsAre(first->id, second->id));
  absl::StatusOr<FeatureSetInfo> got = store_->Get(second->id);
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->files[0].name, "b.npy");

  ASSERT_THAT(store_->Delete(first->id), IsOk());
  EXPECT_FALSE(fs::exists(fs::path(root()) / first->id));
  EXPECT_THAT(store_->Get(first->id), StatusIs(absl::StatusCode::kNotFound, HasSubstr(first->id)));
  EXPECT_THAT(store_->Delete(first->id),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(first->id)));
  EXPECT_THAT(HiddenEntries(root()), IsEmpty());
  store_ = Open();
  ASSERT_EQ(store_->List().size(), 1u);
  EXPECT_EQ(store_->List()[0].id, second->id);
}

TEST_F(FeatureSetStoreTest, UnknownAndInvalidIds) {
  EXPECT_THAT(store_->Get("fs-0123456789abcdef"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("fs-0123456789abcdef")));
  EXPECT_THAT(store_->LoadRows("fs-0123456789abcdef", nullptr),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("fs-0123456789abcdef")));
  for (const char* id : {"", "..", "../sets", "fs-0123456789ABCDEF", "fs-0123456789abcde",
                         "fs-0123456789abcdef0", "xx-0123456789abcdef", ".staging-0"}) {
    EXPECT_THAT(store_->Get(id), StatusIs(kInvalid, HasSubstr("bad feature set id"))) << id;
    EXPECT_THAT(store_->Delete(id), StatusIs(kInvalid, HasSubstr("bad feature set id"))) << id;
    EXPECT_THAT(store_->LoadRows(id, nullptr), StatusIs(kInvalid, HasSubstr("bad feature set id")))
        << id;
  }
}

TEST_F(FeatureSetStoreTest, BadFileNamesAreRejected) {
  for (const std::string& name :
       {std::string(""), std::string("a.txt"), std::string(".a.npy"), std::string("../a.npy"),
        std::string("a/b.npy"), std::string("a b.npy"), std::string("a.npy/"),
        std::string(252, 'x') + ".npy"}) {
    ExpectUploadFails({{name, Float32Npy(1, 768, 0)}}, kInvalid, {"bad feature file name"});
  }
  // The longest name allowed.
  EXPECT_THAT(Upload(*store_, {{std::string(251, 'x') + ".npy", Float32Npy(1, 768, 0)}}), IsOk());
}

TEST_F(FeatureSetStoreTest, DuplicateNamesAreRejected) {
  ExpectUploadFails({{"a.npy", Float32Npy(1, 768, 0)}, {"a.npy", Float32Npy(1, 768, 1)}}, kInvalid,
                    {"'a.npy'", "already uploaded"});
}

TEST_F(FeatureSetStoreTest, ChecksumMismatchNamesFileAndBothDigests) {
  const std::string bytes = Float32Npy(1, 768, 0);
  const std::string wrong = Sha256::HexOf("something else");
  auto upload = store_->BeginUpload();
  ASSERT_THAT(upload, IsOk());
  ASSERT_THAT((*upload)->BeginFile("a.npy", static_cast<int64_t>(bytes.size()), wrong), IsOk());
  ASSERT_THAT((*upload)->Append(bytes), IsOk());
  EXPECT_THAT((*upload)->Finish(),
              StatusIs(kInvalid, AllOf(HasSubstr("'a.npy'"), HasSubstr(Sha256::HexOf(bytes)),
                                       HasSubstr(wrong))));
  EXPECT_THAT(HiddenEntries(root()), IsEmpty());
  // The upload is over.
  EXPECT_THAT((*upload)->Finish(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("failed")));
}

TEST_F(FeatureSetStoreTest, AcceptsUppercaseDigestsAndRejectsMalformedOnes) {
  const std::string bytes = Float32Npy(1, 768, 0);
  auto upload = store_->BeginUpload();
  ASSERT_THAT(upload, IsOk());
  ASSERT_THAT((*upload)->BeginFile("a.npy", static_cast<int64_t>(bytes.size()),
                                   absl::AsciiStrToUpper(Sha256::HexOf(bytes))),
              IsOk());
  ASSERT_THAT((*upload)->Append(bytes), IsOk());
  EXPECT_THAT((*upload)->Finish(), IsOk());

  upload = store_->BeginUpload();
  ASSERT_THAT(upload, IsOk());
  EXPECT_THAT((*upload)->BeginFile("b.npy", 10, "abc"),
              StatusIs(kInvalid, AllOf(HasSubstr("'b.npy'"), HasSubstr("64 hex digits"))));
  upload = store_->BeginUpload();
  ASSERT_THAT(upload, IsOk());
  EXPECT_THAT((*upload)->BeginFile("b.npy", 0, Sha256::HexOf("")),
              StatusIs(kInvalid, AllOf(HasSubstr("'b.npy'"), HasSubstr("size 0"))));
  upload->reset();
  EXPECT_THAT(HiddenEntries(root()), IsEmpty());
}

TEST_F(FeatureSetStoreTest, FewerBytesThanAnnouncedFailsNamingTheFile) {
  const std::string bytes = Float32Npy(2, 768, 0);
  const int64_t size = static_cast<int64_t>(bytes.size());
  // Checked at Finish for the last file...
  auto upload = store_->BeginUpload();
  ASSERT_THAT(upload, IsOk());
  ASSERT_THAT((*upload)->BeginFile("a.npy", size + 1, Sha256::HexOf(bytes)), IsOk());
  ASSERT_THAT((*upload)->Append(bytes), IsOk());
  EXPECT_THAT((*upload)->Finish(),
              StatusIs(kInvalid, AllOf(HasSubstr("'a.npy'"), HasSubstr(absl::StrCat(size + 1)),
                                       HasSubstr(absl::StrCat("received ", size)))));
  // ...and at the next BeginFile for the others.
  upload = store_->BeginUpload();
  ASSERT_THAT(upload, IsOk());
  ASSERT_THAT((*upload)->BeginFile("a.npy", size, Sha256::HexOf(bytes)), IsOk());
  ASSERT_THAT((*upload)->Append(absl::string_view(bytes).substr(0, 100)), IsOk());
  EXPECT_THAT((*upload)->BeginFile("b.npy", size, Sha256::HexOf(bytes)),
              StatusIs(kInvalid, AllOf(HasSubstr("'a.npy'"), HasSubstr("received 100"))));
  EXPECT_THAT(HiddenEntries(root()), IsEmpty());
}

TEST_F(FeatureSetStoreTest, MoreBytesThanAnnouncedFailsNamingTheFile) {
  const std::string bytes = Float32Npy(2, 768, 0);
  auto upload = store_->BeginUpload();
  ASSERT_THAT(upload, IsOk());
  ASSERT_THAT((*upload)->BeginFile("a.npy", 100, Sha256::HexOf(bytes)), IsOk());
  ASSERT_THAT((*upload)->Append(absl::string_view(bytes).substr(0, 60)), IsOk());
  EXPECT_THAT((*upload)->Append(absl::string_view(bytes).substr(60, 60)),
              StatusIs(kInvalid, AllOf(HasSubstr("'a.npy'"), HasSubstr("announced 100 bytes"),
                                       HasSubstr("120"))));
  EXPECT_THAT(HiddenEntries(root()), IsEmpty());
  EXPECT_THAT((*upload)->Append("x"), StatusIs(absl::StatusCode::kFailedPrecondition, _));
}

TEST_F(FeatureSetStoreTest, DataBeforeAnyFileAndEmptyUploadsFail) {
  auto upload = store_->BeginUpload();
  ASSERT_THAT(upload, IsOk());
  EXPECT_THAT((*upload)->Append("data"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("before any file")));
  EXPECT_THAT(HiddenEntries(root()), IsEmpty());
  ExpectUploadFails({}, kInvalid, {"no feature files"});
}

TEST_F(FeatureSetStoreTest, CallsAfterFinishFail) {
  const std::string bytes = Float32Npy(1, 768, 0);
  auto upload = store_->BeginUpload();
  ASSERT_THAT(upload, IsOk());
  ASSERT_THAT(
      (*upload)->BeginFile("a.npy", static_cast<int64_t>(bytes.size()), Sha256::HexOf(bytes)),
      IsOk());
  ASSERT_THAT((*upload)->Append(bytes), IsOk());
  ASSERT_THAT((*upload)->Finish(), IsOk());
  EXPECT_THAT((*upload)->Append("x"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("finished")));
  EXPECT_THAT((*upload)->BeginFile("b.npy", 1, Sha256::HexOf("x")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("finished")));
  EXPECT_THAT((*upload)->Finish(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("finished")));
  upload->reset();
  EXPECT_EQ(store_->List().size(), 1u);
}

TEST_F(FeatureSetStoreTest, AbandonedUploadLeavesNothingBehind) {
  const std::string bytes = Float32Npy(1, 768, 0);
  auto upload = store_->BeginUpload();
  ASSERT_THAT(upload, IsOk());
  ASSERT_THAT(
      (*upload)->BeginFile("a.npy", static_cast<int64_t>(bytes.size()), Sha256::HexOf(bytes)),
      IsOk());
  ASSERT_THAT((*upload)->Append(absl::string_view(bytes).substr(0, 10)), IsOk());
  EXPECT_EQ(HiddenEntries(root()).size(), 1u);
  upload->reset();
  EXPECT_THAT(HiddenEntries(root()), IsEmpty());
  EXPECT_THAT(store_->List(), IsEmpty());
}

// One file that breaks a rule of feature files, and what the error must say.
struct BadFile {
  std::string what;
  std::string bytes;
  std::vector<std::string> message_parts;
};

std::vector<BadFile> BadFiles() {
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

TEST_F(FeatureSetStoreTest, UploadRejectsFilesThatBreakTheRules) {
  for (const BadFile& bad : BadFiles()) {
    SCOPED_TRACE(bad.what);
    std::vector<std::string> parts = bad.message_parts;
    parts.push_back("'bad.npy'");
    ExpectUploadFails({{"a.npy", Float32Npy(1, 768, 0)}, {"bad.npy", bad.bytes}}, kInvalid, parts);
  }
}

TEST_F(FeatureSetStoreTest, MixedDimsAcrossFilesAreRejected) {
  ExpectUploadFails({{"a.npy", Float32Npy(1, 768, 0)}, {"b.npy", Float32Npy(1, 256, 0)}}, kInvalid,
                    {"'b.npy' has dim 256", "'a.npy' has dim 768"});
}

TEST_F(FeatureSetStoreTest, UploadsBeyondTheLimitAreResourceExhausted) {
  FeatureSetStore::Options options;
  options.root = root();
  options.max_upload_bytes = 10000;
  absl::StatusOr<std::unique_ptr<FeatureSetStore>> small = FeatureSetStore::Create(options);
  ASSERT_THAT(small, IsOk());
  auto upload = (*small)->BeginUpload();
  ASSERT_THAT(upload, IsOk());
  EXPECT_THAT((*upload)->BeginFile("a.npy", 10001, Sha256::HexOf("")),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("'a.npy'"), HasSubstr("10001"), HasSubstr("10000"))));
  // The limit is on the sum over the files.
  const std::string bytes = Float32Npy(1, 768, 0);  // 3200 bytes
  std::vector<NamedFile> files = {{"a.npy", bytes}, {"b.npy", bytes}, {"c.npy", bytes}};
  EXPECT_THAT(Upload(**small, files), IsOk());
  files.push_back({"d.npy", bytes});
  EXPECT_THAT(Upload(**small, files),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("'d.npy'")));
  EXPECT_THAT(HiddenEntries(root()), IsEmpty());
  options.max_upload_bytes = 0;
  EXPECT_THAT(FeatureSetStore::Create(options), StatusIs(kInvalid, HasSubstr("max_upload_bytes")));
}

// A tmpfs of a few hundred KiB mounted in a test-owned directory, unmounted on destruction.
class TinyFileSystem {
 public:
  explicit TinyFileSystem(const std::string& path) : path_(path) {
    fs::create_directories(path);
    mounted_ = mount("tmpfs", path.c_str(), "tmpfs", 0, "size=256k") == 0;
    if (!mounted_) error_ = std::strerror(errno);
  }
  ~TinyFileSystem() {
    if (mounted_) umount2(path_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }

 private:
  const std::string path_;
  bool mounted_ = false;
  std::string error_;
};

TEST_F(FeatureSetStoreTest, FullDiskIsResourceExhaustedAndFreesTheSpace) {
  TinyFileSystem tiny(dir_.Join("tiny"));
  if (!tiny.mounted()) {
    GTEST_SKIP() << "mounting a tmpfs to fill up is not permitted here (" << tiny.error()
                 << "); FileSizeLimitIsResourceExhausted covers the same path";
  }
  FeatureSetStore::Options options;
  options.root = dir_.Join("tiny/sets");
  absl::StatusOr<std::unique_ptr<FeatureSetStore>> store = FeatureSetStore::Create(options);
  ASSERT_THAT(store, IsOk());
  const std::string big = Float32Npy(400, 768, 0);  // about 1.2 MB
  EXPECT_THAT(Upload(**store, {{"big.npy", big}}),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("'big.npy'")));
  EXPECT_THAT(HiddenEntries(options.root), IsEmpty());
  // The failed upload's bytes are gone, so a small set fits.
  EXPECT_THAT(Upload(**store, {{"small.npy", Float32Npy(20, 768, 0)}}), IsOk());
}

// Runs in a death-test child: lowers the file-size limit to 64 KiB (with SIGXFSZ ignored, so that
// writes past it fail with EFBIG instead of killing the process), uploads `bytes`, prints the
// status and exits 0 if it is RESOURCE_EXHAUSTED and nothing was left behind.
void UploadUnderFileSizeLimit(FeatureSetStore& store, const std::string& root,
                              const std::string& bytes) {
  signal(SIGXFSZ, SIG_IGN);
  rlimit limit;
  limit.rlim_cur = limit.rlim_max = 64 << 10;
  setrlimit(RLIMIT_FSIZE, &limit);
  const absl::StatusOr<FeatureSetInfo> info = Upload(store, {{"big.npy", bytes}});
  std::fprintf(stderr, "%s\n", info.status().ToString().c_str());
  const bool clean = HiddenEntries(root).empty() && store.List().empty();
  _exit(info.status().code() == absl::StatusCode::kResourceExhausted && clean ? 0 : 1);
}

using FeatureSetStoreDeathTest = FeatureSetStoreTest;

TEST_F(FeatureSetStoreDeathTest, FileSizeLimitIsResourceExhausted) {
  // The BLAS library under timbre_core starts threads, so the child re-runs this test alone.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string big = Float32Npy(100, 768, 0);  // about 300 KB
  EXPECT_EXIT(UploadUnderFileSizeLimit(*store_, root(), big), ::testing::ExitedWithCode(0),
              "RESOURCE_EXHAUSTED.*'big.npy'");
}

TEST_F(FeatureSetStoreTest, CreateRemovesLeftoversOfACrash) {
  store_.reset();
  WriteFile(root() + "/.staging-0123/a.npy", "partial");
  WriteFile(root() + "/.deleting-0123/manifest.json", "{}");
  WriteFile(root() + "/unrelated/file", "kept");
  store_ = Open();
  ASSERT_NE(store_, nullptr);
  EXPECT_THAT(HiddenEntries(root()), IsEmpty());
  EXPECT_TRUE(fs::exists(root() + "/unrelated/file"));
  EXPECT_THAT(store_->List(), IsEmpty());
}

TEST_F(FeatureSetStoreTest, CreateChecksItsOptionsAndManifests) {
  FeatureSetStore::Options options;
  EXPECT_THAT(FeatureSetStore::Create(options), StatusIs(kInvalid, HasSubstr("root is empty")));
  WriteFile(dir_.Join("file"), "x");
  options.root = dir_.Join("file");
  EXPECT_THAT(FeatureSetStore::Create(options), StatusIs(kInvalid, HasSubstr("not a directory")));
  options.root = dir_.Join("deep/er/root");
  options.import_root = dir_.Join("missing");
  EXPECT_THAT(FeatureSetStore::Create(options),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
  options.import_root = dir_.Join("file");
  EXPECT_THAT(FeatureSetStore::Create(options), StatusIs(kInvalid, HasSubstr("not a directory")));
  options.import_root.clear();
  EXPECT_THAT(FeatureSetStore::Create(options), IsOk());
  EXPECT_TRUE(fs::is_directory(options.root));

  WriteFile(root() + "/fs-0123456789abcdef/manifest.json", "{ not json");
  options.root = root();
  EXPECT_THAT(
      FeatureSetStore::Create(options),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               AllOf(HasSubstr("fs-0123456789abcdef/manifest.json"), HasSubstr("manifest"))));
}

TEST_F(FeatureSetStoreTest, CorruptedStoredFileFailsLoadRows) {
  absl::StatusOr<FeatureSetInfo> info = Upload(*store_, {{"a.npy", Float32Npy(2, 768, 0)}});
  ASSERT_THAT(info, IsOk());
  const std::string path = root() + "/" + info->id + "/a.npy";
  std::string bytes = ReadFile(path);
  bytes[bytes.size() - 1] ^= 1;
  fs::remove(path);
  WriteFile(path, bytes);
  EXPECT_THAT(store_->LoadRows(info->id, nullptr),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("'a.npy'"), HasSubstr("SHA-256"))));
  fs::remove(path);
  EXPECT_THAT(store_->LoadRows(info->id, nullptr),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("a.npy")));
}

TEST_F(FeatureSetStoreTest, LoadRowsStopsWhenCancelled) {
  absl::StatusOr<FeatureSetInfo> info =
      Upload(*store_, {{"a.npy", Float32Npy(2, 768, 0)}, {"b.npy", Float32Npy(2, 768, 1)}});
  ASSERT_THAT(info, IsOk());
  RecordingControl before_start;
  before_start.Cancel();
  EXPECT_THAT(store_->LoadRows(info->id, &before_start),
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
  EXPECT_THAT(before_start.fractions, IsEmpty());
  // Cancelled while the first file is read: the second is never reported.
  RecordingControl after_first_block(/*cancel_after_reports=*/1);
  EXPECT_THAT(store_->LoadRows(info->id, &after_first_block),
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
  ASSERT_EQ(after_first_block.messages.size(), 1u);
  EXPECT_THAT(after_first_block.messages[0], HasSubstr("feature file 1 of 2 'a.npy'"));
  EXPECT_EQ(after_first_block.fractions[0], 0.5);
}

// Imports.

TEST_F(FeatureSetStoreTest, ImportReferencesFilesInPlace) {
  WriteFile(imports_.Join("alice/3_feature768/b.npy"), Float32Npy(2, 768, 20));
  WriteFile(imports_.Join("alice/3_feature768/a.npy"),
            NpyBytes(DType::kFloat16, 3, 768, RowValues(3, 768, 10)));
  WriteFile(imports_.Join("alice/3_feature768/notes.txt"), "ignored");
  WriteFile(imports_.Join("alice/3_feature768/.hidden.npy"), "ignored");
  WriteFile(imports_.Join("alice/3_feature768/sub/c.npy"), "ignored");
  absl::StatusOr<FeatureSetInfo> info = store_->ImportDirectory("alice/3_feature768");
  ASSERT_THAT(info, IsOk());
  EXPECT_EQ(info->source, ImportPath("alice/3_feature768"));
  ASSERT_EQ(info->files.size(), 2u);
  EXPECT_EQ(info->files[0].name, "a.npy");
  EXPECT_EQ(info->files[0].dtype, "float16");
  EXPECT_EQ(info->files[0].sha256,
            Sha256::HexOf(ReadFile(imports_.Join("alice/3_feature768/a.npy"))));
  EXPECT_EQ(info->files[1].name, "b.npy");
  EXPECT_EQ(info->rows, 5);
  // Only the manifest is stored; the files stay where they are.
  std::vector<std::string> stored;
  for (const auto& entry : fs::directory_iterator(fs::path(root()) / info->id)) {
    stored.push_back(entry.path().filename().string());
  }
  EXPECT_THAT(stored, ElementsAre("manifest.json"));
  absl::StatusOr<FrameMatrix> rows = store_->LoadRows(info->id, nullptr);
  ASSERT_THAT(rows, IsOk());
  std::vector<float> expected = RowValues(3, 768, 10);
  const std::vector<float> b = RowValues(2, 768, 20);
  expected.insert(expected.end(), b.begin(), b.end());
  EXPECT_EQ(rows->values, expected);
  // Deleting the set leaves the files alone.
  ASSERT_THAT(store_->Delete(info->id), IsOk());
  EXPECT_TRUE(fs::exists(imports_.Join("alice/3_feature768/a.npy")));
}

TEST_F(FeatureSetStoreTest, ImportsOneFileByAbsolutePath) {
  WriteFile(imports_.Join("bob/total_fea.npy"), Float32Npy(4, 256, 0));
  absl::StatusOr<FeatureSetInfo> info = store_->ImportDirectory(imports_.Join("bob/total_fea.npy"));
  ASSERT_THAT(info, IsOk());
  ASSERT_EQ(info->files.size(), 1u);
  EXPECT_EQ(info->files[0].name, "total_fea.npy");
  EXPECT_EQ(info->dim, 256);
  EXPECT_THAT(store_->ImportDirectory("bob/./../bob/total_fea.npy"), IsOk());
}

TEST_F(FeatureSetStoreTest, ImportIsDisabledWithoutImportRoot) {
  FeatureSetStore::Options options;
  options.root = root();
  absl::StatusOr<std::unique_ptr<FeatureSetStore>> store = FeatureSetStore::Create(options);
  ASSERT_THAT(store, IsOk());
  EXPECT_THAT((*store)->ImportDirectory("anything"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("disabled")));
}

TEST_F(FeatureSetStoreTest, ImportCannotEscapeTheImportRoot) {
  ScratchDir outside;
  WriteFile(outside.Join("secret/0.npy"), Float32Npy(1, 768, 0));
  fs::create_directory_symlink(outside.Join("secret"), imports_.Join("link"));
  WriteFile(imports_.Join("mixed/0.npy"), Float32Npy(1, 768, 0));
  fs::create_symlink(outside.Join("secret/0.npy"), imports_.Join("mixed/1.npy"));
  const std::string escape =
      absl::StrCat("../", fs::path(outside.path()).filename().string(), "/secret");
  for (const std::string& path :
       {escape, std::string(".."), outside.Join("secret"), std::string("link"),
        std::string("link/0.npy"), std::string("mixed"), std::string("/etc")}) {
    EXPECT_THAT(store_->ImportDirectory(path),
                StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("outside")))
        << path;
  }
  EXPECT_THAT(store_->List(), IsEmpty());
  EXPECT_THAT(HiddenEntries(root()), IsEmpty());
}

TEST_F(FeatureSetStoreTest, ImportRejectsWhatItCannotUse) {
  EXPECT_THAT(store_->ImportDirectory(""), StatusIs(kInvalid, HasSubstr("empty")));
  EXPECT_THAT(store_->ImportDirectory("missing"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("'missing'")));
  fs::create_directories(imports_.Join("empty"));
  WriteFile(imports_.Join("empty/readme.txt"), "no features");
  EXPECT_THAT(store_->ImportDirectory("empty"), StatusIs(kInvalid, HasSubstr("no .npy files")));
  EXPECT_THAT(store_->ImportDirectory("empty/readme.txt"), StatusIs(kInvalid, HasSubstr(".npy")));
  WriteFile(imports_.Join("mixed/a.npy"), Float32Npy(1, 768, 0));
  WriteFile(imports_.Join("mixed/b.npy"), Float32Npy(1, 256, 0));
  EXPECT_THAT(store_->ImportDirectory("mixed"),
              StatusIs(kInvalid, AllOf(HasSubstr("'b.npy' has dim 256"), HasSubstr("768"))));
  for (const BadFile& bad : BadFiles()) {
    SCOPED_TRACE(bad.what);
    WriteFile(imports_.Join("bad/bad.npy"), bad.bytes);
    absl::StatusOr<FeatureSetInfo> info = store_->ImportDirectory("bad");
    EXPECT_THAT(info, StatusIs(kInvalid, HasSubstr(ImportPath("bad/bad.npy"))));
    for (const std::string& part : bad.message_parts) {
      EXPECT_THAT(std::string(info.status().message()), HasSubstr(part));
    }
  }
  EXPECT_THAT(store_->List(), IsEmpty());
  EXPECT_THAT(HiddenEntries(root()), IsEmpty());
}

TEST_F(FeatureSetStoreTest, ChangedImportedFilesFailLoadRows) {
  WriteFile(imports_.Join("carol/0.npy"), Float32Npy(2, 768, 0));
  const std::string path = ImportPath("carol/0.npy");
  absl::StatusOr<FeatureSetInfo> info = store_->ImportDirectory("carol");
  ASSERT_THAT(info, IsOk());
  ASSERT_THAT(store_->LoadRows(info->id, nullptr), IsOk());

  // Same size, same modification time, other bytes: only the checksum tells.
  const fs::file_time_type mtime = fs::last_write_time(path);
  WriteFile(path, Float32Npy(2, 768, 1));
  fs::last_write_time(path, mtime);
  EXPECT_THAT(store_->LoadRows(info->id, nullptr),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(path), HasSubstr("SHA-256"))));
  // Another size.
  WriteFile(path, Float32Npy(3, 768, 0));
  EXPECT_THAT(store_->LoadRows(info->id, nullptr),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(path), HasSubstr("changed since it was imported"))));
  // Gone.
  fs::remove(path);
  EXPECT_THAT(store_->LoadRows(info->id, nullptr),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr(path), HasSubstr("no longer"))));
}

}  // namespace
}  // namespace timbre
