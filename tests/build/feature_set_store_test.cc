// Tests of FeatureSetStore: a real store in scratch directories.
#include "server/build/feature_set_store.h"

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/io/float16.h"
#include "server/io/sha256.h"
#include "tests/support/feature_set_test_support.h"

namespace timbre {
namespace {

namespace fs = std::filesystem;

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::timbre::testing::BadFeatureFile;
using ::timbre::testing::BadFeatureFiles;
using ::timbre::testing::Float32Npy;
using ::timbre::testing::HiddenEntries;
using ::timbre::testing::IsOk;
using ::timbre::testing::NamedFile;
using ::timbre::testing::NpyBytes;
using ::timbre::testing::NpyHeaderBytes;
using ::timbre::testing::ReadFile;
using ::timbre::testing::RecordingControl;
using ::timbre::testing::RowValues;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;
using ::timbre::testing::Upload;
using ::timbre::testing::WriteFile;

constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;

using FeatureSetStoreTest = ::timbre::testing::FeatureSetStoreFixture;

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

TEST_F(FeatureSetStoreTest, ConcurrentUploadsReadsAndDeletes) {
  absl::StatusOr<FeatureSetInfo> doomed = Upload(*store_, {{"a.npy", Float32Npy(2, 768, 0)}});
  ASSERT_THAT(doomed, IsOk());
  constexpr int kThreads = 4;
  std::vector<absl::StatusOr<FeatureSetInfo>> uploaded(kThreads);
  std::vector<absl::StatusOr<FrameMatrix>> loaded(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      uploaded[i] = Upload(*store_, {{"a.npy", Float32Npy(3, 768, static_cast<float>(i))}});
      if (uploaded[i].ok()) loaded[i] = store_->LoadRows(uploaded[i]->id, nullptr);
      store_->List();
    });
  }
  threads.emplace_back([&] { EXPECT_THAT(store_->Delete(doomed->id), IsOk()); });
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < kThreads; ++i) {
    ASSERT_THAT(uploaded[i], IsOk());
    ASSERT_THAT(loaded[i], IsOk());
    EXPECT_EQ(loaded[i]->values, RowValues(3, 768, static_cast<float>(i)));
  }
  EXPECT_EQ(store_->List().size(), static_cast<size_t>(kThreads));
  EXPECT_THAT(HiddenEntries(root()), IsEmpty());
}

TEST_F(FeatureSetStoreTest, UnknownAndInvalidIds) {
  EXPECT_THAT(store_->Get("fs-0123456789abcdef"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("fs-0123456789abcdef")));
  EXPECT_THAT(store_->LoadRows("fs-0123456789abcdef", nullptr),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("fs-0123456789abcdef")));
  for (const char* id : {"", "..", "../sets", "fs-0123456789ABCDEF", "fs-0123456789abcde",
                         "fs-0123456789abcdef0", "xx-0123456789abcdef", ".staging-0"}) {
    const std::string malformed = absl::StrCat("feature set id '", id, "' is malformed");
    EXPECT_THAT(store_->Get(id), StatusIs(kInvalid, HasSubstr(malformed))) << id;
    EXPECT_THAT(store_->Delete(id), StatusIs(kInvalid, HasSubstr(malformed))) << id;
    EXPECT_THAT(store_->LoadRows(id, nullptr), StatusIs(kInvalid, HasSubstr(malformed))) << id;
  }
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
  EXPECT_THAT(FeatureSetStore::Create(options),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("fs-0123456789abcdef/manifest.json"),
                             HasSubstr("not valid feature-set manifest"))));
  // Valid JSON that breaks a rule: a file name that would lead out of the set directory.
  fs::remove(root() + "/fs-0123456789abcdef/manifest.json");
  WriteFile(root() + "/fs-0123456789abcdef/manifest.json",
            absl::StrCat(R"({"format": 1, "created_at": "2024-01-01T00:00:00Z", "files": [)",
                         R"({"name": "../x.npy", "rows": "1", "dim": 768, "dtype": "float32",)",
                         R"( "bytes": "3200", "sha256": ")", Sha256::HexOf(""), R"("}]})"));
  EXPECT_THAT(FeatureSetStore::Create(options),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("manifest.json"), HasSubstr("bad feature file name"))));
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
  for (const BadFeatureFile& bad : BadFeatureFiles()) {
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
