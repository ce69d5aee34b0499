// Tests of FeatureSetUpload: uploads through a real FeatureSetStore in a scratch directory.
#include "server/build/feature_set_upload.h"

#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/build/feature_set_store.h"
#include "server/io/sha256.h"
#include "server/status/rejection.h"
#include "tests/support/feature_set_test_support.h"

namespace timbre {
namespace {

namespace fs = std::filesystem;

using ::testing::_;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::timbre::testing::BadFeatureFile;
using ::timbre::testing::BadFeatureFiles;
using ::timbre::testing::Float32Npy;
using ::timbre::testing::HiddenEntries;
using ::timbre::testing::IsOk;
using ::timbre::testing::NamedFile;
using ::timbre::testing::NpyBytes;
using ::timbre::testing::RecordingControl;
using ::timbre::testing::RowValues;
using ::timbre::testing::StatusIs;
using ::timbre::testing::Upload;

constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;

class FeatureSetUploadTest : public ::timbre::testing::FeatureSetStoreFixture {
 protected:
  // A new upload whose first file `name` has begun, announcing `size_bytes` and `sha256`.
  std::unique_ptr<FeatureSetUpload> UploadWithFile(absl::string_view name, int64_t size_bytes,
                                                   const std::string& sha256) {
    absl::StatusOr<std::unique_ptr<FeatureSetUpload>> upload = store_->BeginUpload();
    EXPECT_THAT(upload, IsOk());
    if (!upload.ok()) return nullptr;
    EXPECT_THAT((*upload)->BeginFile(name, size_bytes, sha256), IsOk());
    return *std::move(upload);
  }

  // The same, announcing the size and digest of `bytes`.
  std::unique_ptr<FeatureSetUpload> UploadWithFile(absl::string_view name,
                                                   const std::string& bytes) {
    return UploadWithFile(name, static_cast<int64_t>(bytes.size()), Sha256::HexOf(bytes));
  }
};

TEST_F(FeatureSetUploadTest, ManyChunksEqualOneChunk) {
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

TEST_F(FeatureSetUploadTest, LargeFileInManyChunksLoadsWithProgress) {
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

TEST_F(FeatureSetUploadTest, BadFileNamesAreRejected) {
  for (const std::string& name :
       {std::string(""), std::string("a.txt"), std::string(".a.npy"), std::string("../a.npy"),
        std::string("a/b.npy"), std::string("a b.npy"), std::string("a.npy/"),
        std::string(252, 'x') + ".npy"}) {
    ExpectUploadFails({{name, Float32Npy(1, 768, 0)}}, kInvalid, {"bad feature file name"});
  }
  // The longest name allowed.
  EXPECT_THAT(Upload(*store_, {{std::string(251, 'x') + ".npy", Float32Npy(1, 768, 0)}}), IsOk());
}

TEST_F(FeatureSetUploadTest, DuplicateNamesAreRejected) {
  ExpectUploadFails({{"a.npy", Float32Npy(1, 768, 0)}, {"a.npy", Float32Npy(1, 768, 1)}}, kInvalid,
                    {"'a.npy'", "already uploaded"});
}

TEST_F(FeatureSetUploadTest, ChecksumMismatchNamesFileAndBothDigests) {
  const std::string bytes = Float32Npy(1, 768, 0);
  const std::string wrong = Sha256::HexOf("something else");
  std::unique_ptr<FeatureSetUpload> upload =
      UploadWithFile("a.npy", static_cast<int64_t>(bytes.size()), wrong);
  ASSERT_THAT(upload->Append(bytes), IsOk());
  EXPECT_THAT(upload->Finish(),
              StatusIs(kInvalid, AllOf(HasSubstr("'a.npy'"), HasSubstr(Sha256::HexOf(bytes)),
                                       HasSubstr(wrong))));
  EXPECT_THAT(HiddenEntries(root()), IsEmpty());
  // The upload is over.
  EXPECT_THAT(upload->Finish(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("failed")));
}

TEST_F(FeatureSetUploadTest, AcceptsUppercaseDigestsAndRejectsMalformedOnes) {
  const std::string bytes = Float32Npy(1, 768, 0);
  std::unique_ptr<FeatureSetUpload> upload = UploadWithFile(
      "a.npy", static_cast<int64_t>(bytes.size()), absl::AsciiStrToUpper(Sha256::HexOf(bytes)));
  ASSERT_THAT(upload->Append(bytes), IsOk());
  EXPECT_THAT(upload->Finish(), IsOk());

  for (const auto& [size, digest, problem] :
       {std::tuple<int64_t, std::string, std::string>{10, "abc", "64 hex digits"},
        {0, Sha256::HexOf(""), "size 0"},
        {-1, Sha256::HexOf(""), "size -1"}}) {
    absl::StatusOr<std::unique_ptr<FeatureSetUpload>> bad = store_->BeginUpload();
    ASSERT_THAT(bad, IsOk());
    EXPECT_THAT((*bad)->BeginFile("b.npy", size, digest),
                StatusIs(kInvalid, AllOf(HasSubstr("'b.npy'"), HasSubstr(problem))));
    EXPECT_THAT(HiddenEntries(root()), IsEmpty());
  }
}

TEST_F(FeatureSetUploadTest, FewerBytesThanAnnouncedFailsNamingTheFile) {
  const std::string bytes = Float32Npy(2, 768, 0);
  const int64_t size = static_cast<int64_t>(bytes.size());
  // Checked at Finish for the last file...
  std::unique_ptr<FeatureSetUpload> upload =
      UploadWithFile("a.npy", size + 1, Sha256::HexOf(bytes));
  ASSERT_THAT(upload->Append(bytes), IsOk());
  EXPECT_THAT(upload->Finish(),
              StatusIs(kInvalid, AllOf(HasSubstr("'a.npy'"), HasSubstr(absl::StrCat(size + 1)),
                                       HasSubstr(absl::StrCat("received ", size)))));
  // ...and at the next BeginFile for the others.
  upload = UploadWithFile("a.npy", bytes);
  ASSERT_THAT(upload->Append(absl::string_view(bytes).substr(0, 100)), IsOk());
  EXPECT_THAT(upload->BeginFile("b.npy", size, Sha256::HexOf(bytes)),
              StatusIs(kInvalid, AllOf(HasSubstr("'a.npy'"), HasSubstr("received 100"))));
  EXPECT_THAT(HiddenEntries(root()), IsEmpty());
}

TEST_F(FeatureSetUploadTest, MoreBytesThanAnnouncedFailsNamingTheFile) {
  const std::string bytes = Float32Npy(2, 768, 0);
  std::unique_ptr<FeatureSetUpload> upload = UploadWithFile("a.npy", 100, Sha256::HexOf(bytes));
  ASSERT_THAT(upload->Append(absl::string_view(bytes).substr(0, 60)), IsOk());
  EXPECT_THAT(upload->Append(absl::string_view(bytes).substr(60, 60)),
              StatusIs(kInvalid, AllOf(HasSubstr("'a.npy'"), HasSubstr("announced 100 bytes"),
                                       HasSubstr("120"))));
  EXPECT_THAT(HiddenEntries(root()), IsEmpty());
  EXPECT_THAT(upload->Append("x"), StatusIs(absl::StatusCode::kFailedPrecondition, _));
}

TEST_F(FeatureSetUploadTest, DataBeforeAnyFileAndEmptyUploadsFail) {
  auto upload = store_->BeginUpload();
  ASSERT_THAT(upload, IsOk());
  EXPECT_THAT((*upload)->Append("data"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("before any file")));
  EXPECT_THAT(HiddenEntries(root()), IsEmpty());
  ExpectUploadFails({}, kInvalid, {"no feature files"});
}

TEST_F(FeatureSetUploadTest, CallsAfterFinishFail) {
  const std::string bytes = Float32Npy(1, 768, 0);
  std::unique_ptr<FeatureSetUpload> upload = UploadWithFile("a.npy", bytes);
  ASSERT_THAT(upload->Append(bytes), IsOk());
  ASSERT_THAT(upload->Finish(), IsOk());
  EXPECT_THAT(upload->Append("x"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("finished")));
  EXPECT_THAT(upload->BeginFile("b.npy", 1, Sha256::HexOf("x")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("finished")));
  EXPECT_THAT(upload->Finish(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("finished")));
  upload.reset();
  EXPECT_EQ(store_->List().size(), 1u);
}

TEST_F(FeatureSetUploadTest, AbandonedUploadLeavesNothingBehind) {
  const std::string bytes = Float32Npy(1, 768, 0);
  std::unique_ptr<FeatureSetUpload> upload = UploadWithFile("a.npy", bytes);
  ASSERT_THAT(upload->Append(absl::string_view(bytes).substr(0, 10)), IsOk());
  EXPECT_EQ(HiddenEntries(root()).size(), 1u);
  upload.reset();
  EXPECT_THAT(HiddenEntries(root()), IsEmpty());
  EXPECT_THAT(store_->List(), IsEmpty());
}

TEST_F(FeatureSetUploadTest, UploadRejectsFilesThatBreakTheRules) {
  for (const BadFeatureFile& bad : BadFeatureFiles()) {
    SCOPED_TRACE(bad.what);
    std::vector<std::string> parts = bad.message_parts;
    parts.push_back("'bad.npy'");
    ExpectUploadFails({{"a.npy", Float32Npy(1, 768, 0)}, {"bad.npy", bad.bytes}}, kInvalid, parts);
  }
}

TEST_F(FeatureSetUploadTest, MixedDimsAcrossFilesAreRejected) {
  ExpectUploadFails({{"a.npy", Float32Npy(1, 768, 0)}, {"b.npy", Float32Npy(1, 256, 0)}}, kInvalid,
                    {"'b.npy' has dim 256", "'a.npy' has dim 768"});
}

TEST_F(FeatureSetUploadTest, UploadsBeyondTheLimitAreResourceExhausted) {
  FeatureSetStore::Options options;
  options.root = root();
  options.max_upload_bytes = 10000;
  absl::StatusOr<std::unique_ptr<FeatureSetStore>> small = FeatureSetStore::Create(options);
  ASSERT_THAT(small, IsOk());
  auto upload = (*small)->BeginUpload();
  ASSERT_THAT(upload, IsOk());
  const absl::Status too_large = (*upload)->BeginFile("a.npy", 10001, Sha256::HexOf(""));
  EXPECT_THAT(too_large,
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("'a.npy'"), HasSubstr("10001"), HasSubstr("10000"))));
  EXPECT_EQ(RejectionReasonOf(too_large), RejectionReason::kTooLarge);
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

TEST_F(FeatureSetUploadTest, FullDiskIsResourceExhaustedAndFreesTheSpace) {
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
  const absl::Status full = Upload(**store, {{"big.npy", big}}).status();
  EXPECT_THAT(full, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("'big.npy'")));
  EXPECT_EQ(RejectionReasonOf(full), std::nullopt) << "the server's failure, not a refusal";
  EXPECT_THAT(HiddenEntries(options.root), IsEmpty());
  // The failed upload's bytes are gone, so a small set fits.
  EXPECT_THAT(Upload(**store, {{"small.npy", Float32Npy(20, 768, 0)}}), IsOk());
}

// Lowers this process's file-size limit to 64 KiB (with SIGXFSZ ignored, so that writes past it
// fail with EFBIG instead of killing the process), uploads `bytes`, prints the status and returns
// whether it is RESOURCE_EXHAUSTED, not marked as a refusal (the server's failure), with nothing
// left behind. For a death-test child only.
bool UploadUnderFileSizeLimit(FeatureSetStore& store, const std::string& root,
                              const std::string& bytes) {
  signal(SIGXFSZ, SIG_IGN);
  rlimit limit;
  limit.rlim_cur = limit.rlim_max = 64 << 10;
  setrlimit(RLIMIT_FSIZE, &limit);
  const absl::StatusOr<FeatureSetInfo> info = Upload(store, {{"big.npy", bytes}});
  std::fprintf(stderr, "%s\n", info.status().ToString().c_str());
  const bool clean = HiddenEntries(root).empty() && store.List().empty();
  return info.status().code() == absl::StatusCode::kResourceExhausted &&
         !RejectionReasonOf(info.status()).has_value() && clean;
}

using FeatureSetUploadDeathTest = FeatureSetUploadTest;

TEST_F(FeatureSetUploadDeathTest, FileSizeLimitIsResourceExhausted) {
  // The BLAS library under timbre_core starts threads, so the child re-runs this test alone.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string big = Float32Npy(100, 768, 0);  // about 300 KB
  // The child exits without running destructors, so it removes its scratch directories itself.
  auto child = [&] {
    const bool passed = UploadUnderFileSizeLimit(*store_, root(), big);
    store_.reset();
    std::error_code error;
    fs::remove_all(dir_.path(), error);
    fs::remove_all(imports_.path(), error);
    _exit(passed ? 0 : 1);
  };
  EXPECT_EXIT(child(), ::testing::ExitedWithCode(0), "RESOURCE_EXHAUSTED.*'big.npy'");
}

}  // namespace
}  // namespace timbre
