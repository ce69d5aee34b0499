#include "server/serving/speaker_registry.h"

#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/build/demo_speaker.h"
#include "server/faiss/faiss_index.h"
#include "server/serving/speaker_repository.h"
#include "server/status/rejection.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

namespace fs = std::filesystem;

using ::testing::_;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::timbre::testing::IsOk;
using ::timbre::testing::ReadFile;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;
using ::timbre::testing::WaitFor;
using ::timbre::testing::WriteFile;
using ::timbre::testing::WriteRvcIndex;

constexpr int kDim = 16;
constexpr int kNlist = 8;

std::vector<std::string> Names(const std::vector<SpeakerStatus>& statuses) {
  std::vector<std::string> names;
  for (const SpeakerStatus& status : statuses) names.push_back(status.name);
  return names;
}

// Searches `index` for its own first stored vector; returns whether it found it.
bool SearchFindsItself(const FaissIndex& index) {
  float score = -1.0f;
  int64_t id = -1;
  SearchParams params;
  params.k = 1;
  params.nprobe = index.nlist();
  if (!index.Search(index.StoredVector(0), 1, params, 1, &score, &id).ok()) return false;
  return id == 0 && score == 0.0f;
}

class SpeakerRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto repository = SpeakerRepository::Create({scratch_.path()});
    ASSERT_THAT(repository, IsOk());
    repository_ = *std::move(repository);
  }

  std::unique_ptr<SpeakerRegistry> MakeRegistry(absl::Duration poll = absl::ZeroDuration()) {
    SpeakerRegistry::Options options;
    options.repository = repository_.get();
    options.poll_interval = poll;
    auto registry = SpeakerRegistry::Create(options);
    EXPECT_THAT(registry, IsOk());
    return registry.ok() ? *std::move(registry) : nullptr;
  }

  // Writes an RVC index of `rows` generated frames to <root>/<speaker>/<file>.
  void WriteRvcFile(const std::string& speaker, const std::string& file, int64_t rows = 400,
                    uint32_t seed = 1) {
    WriteRvcIndex(GenerateClusteredFrames(rows, kDim, 8, seed), kNlist,
                  scratch_.Join(speaker + "/" + file));
  }

  // Publishes a numbered version with a real index of `rows` frames.
  std::string Publish(const std::string& speaker, int64_t rows = 400, uint32_t seed = 2,
                      timbre::v1::VersionMetadata metadata = {}) {
    const FrameMatrix frames = GenerateClusteredFrames(rows, kDim, 8, seed);
    TrainOptions options;
    options.description = "IVF8,Flat";
    auto index = FaissIndex::Train(options, frames.values.data(), frames.rows, frames.dim);
    EXPECT_THAT(index, IsOk());
    if (!index.ok()) return "";
    auto version = repository_->PublishVersion(speaker, metadata, [&](const std::string& dir) {
      return (*index)->Write(dir + "/" + kDefaultIndexFileName);
    });
    EXPECT_THAT(version, IsOk());
    return version.ok() ? *version : "";
  }

  // Publishes a numbered version whose index file is not an index.
  std::string PublishCorrupt(const std::string& speaker) {
    auto version = repository_->PublishVersion(
        speaker, timbre::v1::VersionMetadata(), [](const std::string& dir) {
          WriteFile(dir + "/" + kDefaultIndexFileName, "garbage, not an index");
          return absl::OkStatus();
        });
    EXPECT_THAT(version, IsOk());
    return version.ok() ? *version : "";
  }

  // A repository with one good speaker and three broken ones.
  void WriteMixedRepository() {
    WriteRvcFile("good", "added_good.index");
    const std::string whole = ReadFile(scratch_.Join("good/added_good.index"));
    WriteFile(scratch_.Join("corrupt/added_corrupt.index"), whole.substr(0, whole.size() / 2));
    WriteRvcFile("trained", "trained_IVF8_Flat_nprobe_1_trained_v2.index");
    WriteFile(scratch_.Join("text/added_text.index"), "I am a text file, not an index.\n");
  }

  ScratchDir scratch_;
  std::unique_ptr<SpeakerRepository> repository_;
};

TEST(SpeakerRegistryCreateTest, RequiresRepository) {
  EXPECT_THAT(SpeakerRegistry::Create({}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("repository")));
}

TEST_F(SpeakerRegistryTest, CreateFailsWhenRootCannotBeRead) {
  const std::string root = scratch_.Join("root");
  fs::create_directories(root);
  auto repository = SpeakerRepository::Create({root});
  ASSERT_THAT(repository, IsOk());
  fs::remove_all(root);
  SpeakerRegistry::Options options;
  options.repository = repository->get();
  options.poll_interval = absl::ZeroDuration();
  EXPECT_THAT(SpeakerRegistry::Create(options),
              StatusIs(absl::StatusCode::kInternal, HasSubstr(root)));
}

TEST_F(SpeakerRegistryTest, WithoutScanOnCreateEveryCallIsUnavailableUntilTheFirstScan) {
  WriteRvcFile("alice", "added_alice.index");
  SpeakerRegistry::Options options;
  options.repository = repository_.get();
  options.poll_interval = absl::ZeroDuration();
  options.scan_on_create = false;
  auto created = SpeakerRegistry::Create(options);
  ASSERT_THAT(created, IsOk());
  SpeakerRegistry& registry = **created;
  const auto not_scanned = StatusIs(absl::StatusCode::kUnavailable, HasSubstr("not been scanned"));
  EXPECT_THAT(registry.Ready(), not_scanned);
  EXPECT_THAT(registry.List(), IsEmpty());
  EXPECT_THAT(registry.Acquire("alice"),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("alice"), HasSubstr("not been scanned"))));
  EXPECT_THAT(registry.Get("alice"), not_scanned);
  EXPECT_THAT(registry.Unload("alice"), not_scanned);
  absl::Notification loaded;
  registry.Load("alice", /*warmup=*/false, [&](absl::StatusOr<SpeakerStatus> status) {
    EXPECT_THAT(status, not_scanned);
    loaded.Notify();
  });
  EXPECT_TRUE(loaded.HasBeenNotified());

  ASSERT_THAT(registry.Refresh(), IsOk());
  EXPECT_THAT(registry.Ready(), IsOk());
  EXPECT_THAT(Names(registry.List()), ::testing::ElementsAre("alice"));
  EXPECT_THAT(registry.Acquire("alice"), IsOk());
  EXPECT_THAT(registry.Acquire("bob"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("bob")));
}

TEST_F(SpeakerRegistryTest, FirstScanThatFailsLeavesTheRegistryUnavailable) {
  const std::string root = scratch_.Join("root");
  fs::create_directories(root);
  auto repository = SpeakerRepository::Create({root});
  ASSERT_THAT(repository, IsOk());
  SpeakerRegistry::Options options;
  options.repository = repository->get();
  options.poll_interval = absl::ZeroDuration();
  options.scan_on_create = false;
  auto registry = SpeakerRegistry::Create(options);
  ASSERT_THAT(registry, IsOk());
  fs::remove_all(root);
  EXPECT_THAT((*registry)->Refresh(), StatusIs(absl::StatusCode::kInternal, HasSubstr(root)));
  EXPECT_THAT((*registry)->Ready(), StatusIs(absl::StatusCode::kUnavailable, _));
  fs::create_directories(root);
  EXPECT_THAT((*registry)->Refresh(), IsOk());
  EXPECT_THAT((*registry)->Ready(), IsOk());
}

TEST_F(SpeakerRegistryTest, EmptyRepositoryListsNothing) {
  auto registry = MakeRegistry();
  ASSERT_NE(registry, nullptr);
  EXPECT_THAT(registry->List(), IsEmpty());
  EXPECT_THAT(registry->Acquire("anyone"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("anyone")));
}

TEST_F(SpeakerRegistryTest, ListsLoadedAndFailedSpeakersWithReasons) {
  WriteMixedRepository();
  auto registry = MakeRegistry();
  ASSERT_NE(registry, nullptr);
  const std::vector<SpeakerStatus> all = registry->List();
  ASSERT_THAT(Names(all), ::testing::ElementsAre("corrupt", "good", "text", "trained"));

  const SpeakerStatus& good = all[1];
  ASSERT_NE(good.snapshot, nullptr);
  EXPECT_THAT(good.error, IsEmpty());
  EXPECT_EQ(good.snapshot->speaker, "good");
  EXPECT_EQ(good.snapshot->version, "added_good.index");
  EXPECT_EQ(good.snapshot->path, scratch_.Join("good/added_good.index"));
  EXPECT_EQ(good.snapshot->index->size(), 400);
  EXPECT_EQ(good.snapshot->index->dim(), kDim);
  EXPECT_TRUE(SearchFindsItself(*good.snapshot->index));

  EXPECT_EQ(all[0].snapshot, nullptr);
  EXPECT_THAT(all[0].error, AllOf(HasSubstr("added_corrupt.index"), HasSubstr("faiss")));
  EXPECT_EQ(all[2].snapshot, nullptr);
  EXPECT_THAT(all[2].error,
              AllOf(HasSubstr("added_text.index"), HasSubstr("not a readable faiss index")));
  EXPECT_EQ(all[3].snapshot, nullptr);
  EXPECT_THAT(all[3].error, HasSubstr("trained_IVF8_Flat_nprobe_1_trained_v2.index"));
}

TEST_F(SpeakerRegistryTest, AcquireAndGetReportEachState) {
  WriteMixedRepository();
  auto registry = MakeRegistry();
  ASSERT_NE(registry, nullptr);

  auto good = registry->Acquire("good");
  ASSERT_THAT(good, IsOk());
  EXPECT_EQ((*good)->version, "added_good.index");

  EXPECT_THAT(registry->Acquire("trained"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("'trained'"), HasSubstr("trained_"))));
  EXPECT_THAT(registry->Acquire("corrupt"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("added_corrupt.index")));
  EXPECT_THAT(registry->Acquire("text"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("added_text.index")));
  EXPECT_THAT(registry->Acquire("nobody"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("nobody")));
  for (const char* name : {"", "../good", "a/b", ".hidden"}) {
    EXPECT_THAT(registry->Acquire(name), StatusIs(absl::StatusCode::kInvalidArgument, _)) << name;
    EXPECT_THAT(registry->Get(name), StatusIs(absl::StatusCode::kInvalidArgument, _)) << name;
  }

  auto failed = registry->Get("trained");
  ASSERT_THAT(failed, IsOk());
  EXPECT_EQ(failed->name, "trained");
  EXPECT_EQ(failed->snapshot, nullptr);
  EXPECT_THAT(failed->error, HasSubstr("trained_"));
  EXPECT_THAT(registry->Get("nobody"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("nobody")));
}

TEST_F(SpeakerRegistryTest, RvcFileLoadsOnlyOnceUnchangedAcrossTwoRefreshes) {
  auto registry = MakeRegistry();
  ASSERT_NE(registry, nullptr);
  WriteRvcFile("newbie", "added_newbie.index", 400);
  ASSERT_THAT(registry->Refresh(), IsOk());
  // Not known until it has settled: not found rather than failed without a reason.
  EXPECT_THAT(registry->Acquire("newbie"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("newbie")));
  EXPECT_EQ(registry->List().size(), 0u);

  // The copy goes on: the file changes, so it is still not loaded.
  WriteRvcFile("newbie", "added_newbie.index", 480);
  ASSERT_THAT(registry->Refresh(), IsOk());
  EXPECT_THAT(registry->Acquire("newbie"), Not(IsOk()));

  ASSERT_THAT(registry->Refresh(), IsOk());
  auto snapshot = registry->Acquire("newbie");
  ASSERT_THAT(snapshot, IsOk());
  EXPECT_EQ((*snapshot)->version, "added_newbie.index");
  EXPECT_EQ((*snapshot)->index->size(), 480);
  EXPECT_THAT(registry->Get("newbie")->error, IsEmpty());
}

TEST_F(SpeakerRegistryTest, ReplacedRvcFileIsReloadedAfterSettling) {
  WriteRvcFile("alice", "added_alice.index", 400);
  auto registry = MakeRegistry();
  ASSERT_NE(registry, nullptr);
  ASSERT_EQ((*registry->Acquire("alice"))->index->size(), 400);

  WriteRvcFile("alice", "added_alice.index", 440);
  ASSERT_THAT(registry->Refresh(), IsOk());
  auto during = registry->Acquire("alice");  // the old file keeps serving meanwhile
  ASSERT_THAT(during, IsOk());
  EXPECT_EQ((*during)->index->size(), 400);
  ASSERT_THAT(registry->Refresh(), IsOk());
  auto after = registry->Acquire("alice");
  ASSERT_THAT(after, IsOk());
  EXPECT_EQ((*after)->index->size(), 440);
}

TEST_F(SpeakerRegistryTest, FailedSpeakerRecoversWhenFixed) {
  WriteRvcFile("alice", "trained_alice.index");
  auto registry = MakeRegistry();
  ASSERT_NE(registry, nullptr);
  ASSERT_THAT(registry->Acquire("alice"), StatusIs(absl::StatusCode::kFailedPrecondition, _));
  WriteRvcFile("alice", "added_alice.index");
  ASSERT_THAT(registry->Refresh(), IsOk());
  ASSERT_THAT(registry->Refresh(), IsOk());
  auto snapshot = registry->Acquire("alice");
  ASSERT_THAT(snapshot, IsOk());
  EXPECT_EQ((*snapshot)->version, "added_alice.index");
  EXPECT_THAT(registry->Get("alice")->error, IsEmpty());
}

TEST_F(SpeakerRegistryTest, PublishedVersionIsPickedUpByNextRefresh) {
  WriteRvcFile("alice", "added_alice.index", 400);
  auto registry = MakeRegistry();
  ASSERT_NE(registry, nullptr);
  auto old_snapshot = registry->Acquire("alice");
  ASSERT_THAT(old_snapshot, IsOk());
  ASSERT_EQ((*old_snapshot)->version, "added_alice.index");

  const std::string version = Publish("alice", 520);
  ASSERT_EQ(version, "1");
  // Not before the scan.
  EXPECT_EQ((*registry->Acquire("alice"))->version, "added_alice.index");
  ASSERT_THAT(registry->Refresh(), IsOk());  // numbered versions need no settling
  auto new_snapshot = registry->Acquire("alice");
  ASSERT_THAT(new_snapshot, IsOk());
  EXPECT_EQ((*new_snapshot)->version, "1");
  EXPECT_EQ((*new_snapshot)->index->size(), 520);
  EXPECT_EQ((*new_snapshot)->speaker, "alice");
  EXPECT_NE((*new_snapshot)->loaded_at, absl::InfinitePast());

  // The swapped-out snapshot held by a caller is still whole and searchable.
  EXPECT_EQ((*old_snapshot)->version, "added_alice.index");
  EXPECT_EQ((*old_snapshot)->index->size(), 400);
  EXPECT_TRUE(SearchFindsItself(*(*old_snapshot)->index));
}

TEST_F(SpeakerRegistryTest, UnchangedRepositoryKeepsTheSameSnapshot) {
  Publish("alice");
  auto registry = MakeRegistry();
  ASSERT_NE(registry, nullptr);
  auto before = registry->Acquire("alice");
  ASSERT_THAT(before, IsOk());
  ASSERT_THAT(registry->Refresh(), IsOk());
  ASSERT_THAT(registry->Refresh(), IsOk());
  auto after = registry->Acquire("alice");
  ASSERT_THAT(after, IsOk());
  EXPECT_EQ(before->get(), after->get());  // not reloaded
}

TEST_F(SpeakerRegistryTest, FailingNewVersionKeepsOldOneServing) {
  ASSERT_EQ(Publish("alice"), "1");
  auto registry = MakeRegistry();
  ASSERT_NE(registry, nullptr);
  ASSERT_EQ((*registry->Acquire("alice"))->version, "1");

  ASSERT_EQ(PublishCorrupt("alice"), "2");
  ASSERT_THAT(registry->Refresh(), IsOk());
  auto serving = registry->Acquire("alice");
  ASSERT_THAT(serving, IsOk());
  EXPECT_EQ((*serving)->version, "1");
  EXPECT_TRUE(SearchFindsItself(*(*serving)->index));
  auto status = registry->Get("alice");
  ASSERT_THAT(status, IsOk());
  EXPECT_NE(status->snapshot, nullptr);
  EXPECT_THAT(status->error, AllOf(HasSubstr("/2/"), HasSubstr("not a readable faiss index")));

  // A good version 3 clears the error.
  ASSERT_EQ(Publish("alice"), "3");
  ASSERT_THAT(registry->Refresh(), IsOk());
  EXPECT_EQ((*registry->Acquire("alice"))->version, "3");
  EXPECT_THAT(registry->Get("alice")->error, IsEmpty());
}

TEST_F(SpeakerRegistryTest, MetadataThatDisagreesWithTheIndexFails) {
  ASSERT_EQ(Publish("alice"), "1");
  auto registry = MakeRegistry();
  ASSERT_NE(registry, nullptr);
  timbre::v1::VersionMetadata wrong_dim;
  wrong_dim.set_dim(32);
  ASSERT_EQ(Publish("alice", 400, 3, wrong_dim), "2");
  ASSERT_THAT(registry->Refresh(), IsOk());
  EXPECT_EQ((*registry->Acquire("alice"))->version, "1");
  EXPECT_THAT(registry->Get("alice")->error,
              AllOf(HasSubstr("version 2"), HasSubstr("dim 32"), HasSubstr("16")));

  timbre::v1::VersionMetadata wrong_count;
  wrong_count.set_num_vectors(7);
  ASSERT_EQ(Publish("bob", 400, 3, wrong_count), "1");
  ASSERT_THAT(registry->Refresh(), IsOk());
  EXPECT_THAT(registry->Acquire("bob"), StatusIs(absl::StatusCode::kFailedPrecondition,
                                                 AllOf(HasSubstr("7 vectors"), HasSubstr("400"))));
}

TEST_F(SpeakerRegistryTest, RemovedSpeakerLeavesTheList) {
  WriteRvcFile("alice", "added_alice.index");
  Publish("bob");
  auto registry = MakeRegistry();
  ASSERT_NE(registry, nullptr);
  ASSERT_THAT(Names(registry->List()), ::testing::ElementsAre("alice", "bob"));
  auto held = registry->Acquire("alice");
  ASSERT_THAT(held, IsOk());

  fs::remove_all(scratch_.Join("alice"));
  ASSERT_THAT(registry->Refresh(), IsOk());
  EXPECT_THAT(Names(registry->List()), ::testing::ElementsAre("bob"));
  EXPECT_THAT(registry->Acquire("alice"), StatusIs(absl::StatusCode::kNotFound, _));
  EXPECT_TRUE(SearchFindsItself(*(*held)->index));  // the caller's snapshot outlives removal
}

TEST_F(SpeakerRegistryTest, UnreadableRootKeepsSpeakersServing) {
  const std::string root = scratch_.Join("root");
  WriteRvcIndex(GenerateClusteredFrames(400, kDim, 8, 4), kNlist, root + "/alice/added_a.index");
  auto repository = SpeakerRepository::Create({root});
  ASSERT_THAT(repository, IsOk());
  SpeakerRegistry::Options options;
  options.repository = repository->get();
  options.poll_interval = absl::ZeroDuration();
  auto registry = SpeakerRegistry::Create(options);
  ASSERT_THAT(registry, IsOk());
  fs::remove_all(root);
  EXPECT_THAT((*registry)->Refresh(), StatusIs(absl::StatusCode::kInternal, HasSubstr(root)));
  EXPECT_THAT((*registry)->Acquire("alice"), IsOk());
}

TEST_F(SpeakerRegistryTest, PollingPicksUpPublishedVersions) {
  auto registry = MakeRegistry(absl::Milliseconds(20));
  ASSERT_NE(registry, nullptr);
  EXPECT_THAT(registry->List(), IsEmpty());
  ASSERT_EQ(Publish("alice"), "1");
  EXPECT_TRUE(WaitFor([&] {
    auto snapshot = registry->Acquire("alice");
    return snapshot.ok() && (*snapshot)->version == "1";
  }));
  ASSERT_EQ(Publish("alice", 440), "2");
  EXPECT_TRUE(WaitFor([&] {
    auto snapshot = registry->Acquire("alice");
    return snapshot.ok() && (*snapshot)->version == "2";
  }));
  EXPECT_EQ((*registry->Acquire("alice"))->index->size(), 440);
  // RVC files settle across two polls, then load.
  WriteRvcFile("bob", "added_bob.index");
  EXPECT_TRUE(WaitFor([&] { return registry->Acquire("bob").ok(); }));
}

TEST_F(SpeakerRegistryTest, VersionSwapUnderConcurrentSearches) {
  ASSERT_EQ(Publish("alice", 400, 100), "1");
  auto registry = MakeRegistry();
  ASSERT_NE(registry, nullptr);

  std::atomic<bool> stop{false};
  std::atomic<int64_t> searches{0};
  std::atomic<int64_t> failures{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&, t] {
      const FrameMatrix queries = GenerateClusteredFrames(8, kDim, 4, 50 + t);
      std::vector<float> scores(8 * 4);
      std::vector<int64_t> ids(8 * 4);
      SearchParams params;
      params.k = 4;
      while (!stop.load()) {
        auto snapshot = registry->Acquire("alice");
        if (!snapshot.ok()) {
          failures.fetch_add(1);
          continue;
        }
        const FaissIndex& index = *(*snapshot)->index;
        if (!index.Search(queries.values.data(), queries.rows, params, 1, scores.data(), ids.data())
                 .ok()) {
          failures.fetch_add(1);
          continue;
        }
        for (int64_t id : ids) {
          if (id >= index.size()) failures.fetch_add(1);
          if (id >= 0 && !std::isfinite(index.StoredVector(id)[0])) failures.fetch_add(1);
        }
        searches.fetch_add(1);
      }
    });
  }
  for (int v = 2; v <= 6; ++v) {
    const int64_t rows = 400 + 40 * v;
    ASSERT_EQ(Publish("alice", rows, 100 + v), std::to_string(v));
    ASSERT_THAT(registry->Refresh(), IsOk());
    auto snapshot = registry->Acquire("alice");
    ASSERT_THAT(snapshot, IsOk());
    EXPECT_EQ((*snapshot)->version, std::to_string(v));
    EXPECT_EQ((*snapshot)->index->size(), rows);
    // Let the readers run against this version before the next swap.
    const int64_t seen = searches.load();
    EXPECT_TRUE(WaitFor([&] { return searches.load() >= seen + 20; }));
  }
  stop.store(true);
  for (std::thread& reader : readers) reader.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(searches.load(), 100);
}

// Records loads and evictions, checks the budget at every event, and can hold the loader inside a
// chosen speaker's load (OnLoadFinished runs before the load is installed) to make calls overlap
// with it.
class RecordingObserver : public SpeakerRegistryObserver {
 public:
  void set_registry(const SpeakerRegistry* registry) { registry_.store(registry); }

  void OnLoadFinished(absl::string_view speaker, const absl::Status& status,
                      absl::Duration duration) override {
    {
      absl::MutexLock lock(&mutex_);
      ++loads_[std::string(speaker)];
      if (speaker == hold_speaker_) {
        held_ = true;
        mutex_.Await(absl::Condition(&released_));
      }
    }
    CheckBudget();
  }

  void OnEvicted(absl::string_view speaker, int64_t bytes) override {
    {
      absl::MutexLock lock(&mutex_);
      evictions_.push_back(std::string(speaker));
    }
    CheckBudget();
  }

  // Holds the next load of `speaker` until Release().
  void Hold(const std::string& speaker) {
    absl::MutexLock lock(&mutex_);
    hold_speaker_ = speaker;
    released_ = false;
    held_ = false;
  }
  bool held() {
    absl::MutexLock lock(&mutex_);
    return held_;
  }
  void Release() {
    absl::MutexLock lock(&mutex_);
    hold_speaker_.clear();
    released_ = true;
  }

  int loads(const std::string& speaker) {
    absl::MutexLock lock(&mutex_);
    return loads_[speaker];
  }
  std::vector<std::string> evictions() {
    absl::MutexLock lock(&mutex_);
    return evictions_;
  }
  int64_t over_budget() const { return over_budget_.load(); }

 private:
  void CheckBudget() {
    const SpeakerRegistry* registry = registry_.load();
    if (registry == nullptr) return;
    const RegistryUsage usage = registry->Usage();
    if (usage.budget_bytes > 0 && usage.memory_bytes > usage.budget_bytes) over_budget_++;
  }

  std::atomic<const SpeakerRegistry*> registry_{nullptr};
  std::atomic<int64_t> over_budget_{0};
  absl::Mutex mutex_;
  std::map<std::string, int> loads_ ABSL_GUARDED_BY(mutex_);
  std::vector<std::string> evictions_ ABSL_GUARDED_BY(mutex_);
  std::string hold_speaker_ ABSL_GUARDED_BY(mutex_);
  bool held_ ABSL_GUARDED_BY(mutex_) = false;
  bool released_ ABSL_GUARDED_BY(mutex_) = true;
};

// Three speakers with indexes of one size under a budget for two of them.
class SpeakerRegistryBudgetTest : public SpeakerRegistryTest {
 protected:
  void SetUp() override {
    SpeakerRegistryTest::SetUp();
    for (uint32_t seed = 0; seed < 3; ++seed) {
      const std::string name(1, static_cast<char>('a' + seed));
      WriteRvcFile(name, "added_" + name + ".index", 400, 10 + seed);
    }
    // Their memory differs a little (the list scan's codes pad each list to blocks of 16).
    for (const std::string name : {"a", "b", "c"}) {
      auto index = FaissIndex::Load(scratch_.Join(name + "/added_" + name + ".index"));
      ASSERT_THAT(index, IsOk());
      bytes_[name] = (*index)->memory_bytes();
    }
    index_bytes_ = bytes_["a"];
    ASSERT_GE(index_bytes_, static_cast<int64_t>(fs::file_size(scratch_.Join("a/added_a.index"))));
  }

  std::unique_ptr<SpeakerRegistry> MakeBudgetRegistry(int64_t budget, bool mmap = false,
                                                      bool warmup = false, bool lazy = false) {
    SpeakerRegistry::Options options;
    options.lazy_load = lazy;
    options.repository = repository_.get();
    options.poll_interval = absl::ZeroDuration();
    options.memory_budget_bytes = budget;
    options.mmap_indexes = mmap;
    options.warmup_on_load = warmup;
    options.observer = &observer_;
    auto registry = SpeakerRegistry::Create(options);
    EXPECT_THAT(registry, IsOk());
    if (!registry.ok()) return nullptr;
    observer_.set_registry(registry->get());
    return *std::move(registry);
  }

  int64_t BudgetForTwo() const { return 2 * index_bytes_ + index_bytes_ / 2; }

  SpeakerState StateOf(SpeakerRegistry& registry, const std::string& speaker) {
    auto status = registry.Get(speaker);
    EXPECT_THAT(status, IsOk());
    return status.ok() ? status->state : SpeakerState::kFailed;
  }

  // Destroyed after the registries the tests make (declared before them).
  RecordingObserver observer_;
  int64_t index_bytes_ = 0;               // a's
  std::map<std::string, int64_t> bytes_;  // by speaker
};

TEST_F(SpeakerRegistryBudgetTest, ScanLoadsWhatFitsAndLeavesTheRestUnloaded) {
  auto registry = MakeBudgetRegistry(BudgetForTwo());
  ASSERT_NE(registry, nullptr);
  EXPECT_EQ(StateOf(*registry, "a"), SpeakerState::kLoaded);
  EXPECT_EQ(StateOf(*registry, "b"), SpeakerState::kLoaded);
  EXPECT_EQ(StateOf(*registry, "c"), SpeakerState::kUnloaded);
  EXPECT_THAT(registry->Get("c")->error, IsEmpty());
  const RegistryUsage usage = registry->Usage();
  EXPECT_EQ(usage.speakers[static_cast<int>(SpeakerState::kLoaded)], 2);
  EXPECT_EQ(usage.speakers[static_cast<int>(SpeakerState::kUnloaded)], 1);
  EXPECT_EQ(usage.memory_bytes, bytes_["a"] + bytes_["b"]);
  EXPECT_EQ(usage.mapped_bytes, 0);
  EXPECT_EQ(usage.budget_bytes, BudgetForTwo());
  EXPECT_THAT(observer_.evictions(), IsEmpty());
}

TEST_F(SpeakerRegistryBudgetTest, LoadingEvictsTheLeastRecentlyUsedSpeaker) {
  auto registry = MakeBudgetRegistry(BudgetForTwo());
  ASSERT_NE(registry, nullptr);
  ASSERT_THAT(registry->Acquire("a"), IsOk());  // b is now the least recently used
  auto c = registry->Acquire("c");
  ASSERT_THAT(c, IsOk());
  EXPECT_TRUE(SearchFindsItself(*(*c)->index));
  EXPECT_THAT(observer_.evictions(), ::testing::ElementsAre("b"));
  EXPECT_EQ(StateOf(*registry, "a"), SpeakerState::kLoaded);
  EXPECT_EQ(StateOf(*registry, "b"), SpeakerState::kUnloaded);
  EXPECT_EQ(StateOf(*registry, "c"), SpeakerState::kLoaded);

  // Loading c counted as its use, so a is now the least recently used.
  ASSERT_THAT(registry->Acquire("b"), IsOk());
  EXPECT_THAT(observer_.evictions(), ::testing::ElementsAre("b", "a"));
  EXPECT_EQ(StateOf(*registry, "a"), SpeakerState::kUnloaded);
  EXPECT_EQ(registry->Usage().memory_bytes, bytes_["b"] + bytes_["c"]);
  EXPECT_EQ(observer_.over_budget(), 0);
}

TEST_F(SpeakerRegistryBudgetTest, ConcurrentCallersAllSucceedWithinTheBudget) {
  auto registry = MakeBudgetRegistry(BudgetForTwo());
  ASSERT_NE(registry, nullptr);
  std::atomic<bool> done{false};
  std::atomic<int64_t> failures{0};
  std::atomic<int64_t> samples_over_budget{0};
  std::thread monitor([&] {
    while (!done.load()) {
      const RegistryUsage usage = registry->Usage();
      if (usage.memory_bytes > usage.budget_bytes) samples_over_budget++;
      if (usage.speakers[static_cast<int>(SpeakerState::kFailed)] > 0) failures++;
    }
  });
  std::vector<std::thread> callers;
  for (int t = 0; t < 6; ++t) {
    callers.emplace_back([&, t] {
      for (int call = 0; call < 30; ++call) {
        const std::string speaker(1, static_cast<char>('a' + (t + call) % 3));
        auto snapshot = registry->Acquire(speaker);
        if (!snapshot.ok() || (*snapshot)->speaker != speaker ||
            !SearchFindsItself(*(*snapshot)->index)) {
          failures++;
        }
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  done.store(true);
  monitor.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(samples_over_budget.load(), 0);
  EXPECT_EQ(observer_.over_budget(), 0);
  EXPECT_FALSE(observer_.evictions().empty());
  EXPECT_LE(registry->Usage().memory_bytes, BudgetForTwo());
}

TEST_F(SpeakerRegistryBudgetTest, ConcurrentCallsOfAnUnloadedSpeakerShareOneLoad) {
  auto registry = MakeBudgetRegistry(BudgetForTwo());
  ASSERT_NE(registry, nullptr);
  ASSERT_EQ(StateOf(*registry, "c"), SpeakerState::kUnloaded);
  observer_.Hold("c");
  constexpr int kCalls = 8;
  std::atomic<int> answered{0};
  std::atomic<int> good{0};
  auto call = [&] {
    registry->AcquireAsync("c", [&](absl::StatusOr<std::shared_ptr<const IndexSnapshot>> s) {
      if (s.ok() && (*s)->speaker == "c") good++;
      answered++;
    });
  };
  call();
  ASSERT_TRUE(WaitFor([&] { return observer_.held(); }));  // c's load is running
  EXPECT_EQ(StateOf(*registry, "c"), SpeakerState::kLoading);
  for (int i = 1; i < kCalls; ++i) call();
  EXPECT_EQ(answered.load(), 0);
  observer_.Release();
  ASSERT_TRUE(WaitFor([&] { return answered.load() == kCalls; }));
  EXPECT_EQ(good.load(), kCalls);
  EXPECT_EQ(observer_.loads("c"), 1);
}

TEST_F(SpeakerRegistryBudgetTest, LazyLoadLoadsEachSpeakerOnItsFirstCallOnce) {
  auto registry = MakeBudgetRegistry(0, false, false, /*lazy=*/true);
  ASSERT_NE(registry, nullptr);
  // The scan loaded nothing: every speaker is known and unloaded, and the registry is ready.
  EXPECT_THAT(registry->Ready(), IsOk());
  for (const char* name : {"a", "b", "c"}) {
    EXPECT_EQ(StateOf(*registry, name), SpeakerState::kUnloaded) << name;
    EXPECT_EQ(observer_.loads(name), 0) << name;
  }
  EXPECT_EQ(registry->Usage().memory_bytes, 0);
  // Concurrent first calls share one load.
  observer_.Hold("a");
  constexpr int kCalls = 6;
  std::atomic<int> good{0};
  std::atomic<int> answered{0};
  for (int i = 0; i < kCalls; ++i) {
    registry->AcquireAsync("a", [&](absl::StatusOr<std::shared_ptr<const IndexSnapshot>> s) {
      if (s.ok() && (*s)->speaker == "a") good++;
      answered++;
    });
  }
  ASSERT_TRUE(WaitFor([&] { return observer_.held(); }));
  observer_.Release();
  ASSERT_TRUE(WaitFor([&] { return answered.load() == kCalls; }));
  EXPECT_EQ(good.load(), kCalls);
  EXPECT_EQ(observer_.loads("a"), 1);
  EXPECT_EQ(StateOf(*registry, "b"), SpeakerState::kUnloaded);
  // A scan hot-swaps a new version of the loaded speaker and leaves the others unloaded; their
  // first call loads the newest version.
  Publish("a");
  Publish("b");
  ASSERT_THAT(registry->Refresh(), IsOk());
  auto a = registry->Get("a");
  ASSERT_THAT(a, IsOk());
  ASSERT_NE(a->snapshot, nullptr);
  EXPECT_EQ(a->snapshot->version, "1");
  EXPECT_EQ(observer_.loads("a"), 2);
  EXPECT_EQ(StateOf(*registry, "b"), SpeakerState::kUnloaded);
  EXPECT_EQ(observer_.loads("b"), 0);
  auto b = registry->Acquire("b");
  ASSERT_THAT(b, IsOk());
  EXPECT_EQ((*b)->version, "1");
}

TEST_F(SpeakerRegistryBudgetTest, CallsInFlightKeepTheirSnapshotAcrossAnUnload) {
  auto registry = MakeBudgetRegistry(0);
  ASSERT_NE(registry, nullptr);
  auto held = registry->Acquire("a");
  ASSERT_THAT(held, IsOk());
  auto unloaded = registry->Unload("a");
  ASSERT_THAT(unloaded, IsOk());
  EXPECT_EQ(unloaded->state, SpeakerState::kUnloaded);
  EXPECT_EQ(unloaded->snapshot, nullptr);
  EXPECT_EQ(registry->Usage().memory_bytes, bytes_["b"] + bytes_["c"]);
  EXPECT_EQ(registry->Usage().speakers[static_cast<int>(SpeakerState::kUnloaded)], 1);
  // The caller's snapshot is whole and searchable after the unload.
  EXPECT_TRUE(SearchFindsItself(*(*held)->index));
  // Unloading again changes nothing; scans leave an unloaded speaker alone.
  EXPECT_THAT(registry->Unload("a"), IsOk());
  ASSERT_THAT(registry->Refresh(), IsOk());
  EXPECT_EQ(StateOf(*registry, "a"), SpeakerState::kUnloaded);

  // The next call loads it again.
  auto reloaded = registry->Acquire("a");
  ASSERT_THAT(reloaded, IsOk());
  EXPECT_NE(reloaded->get(), held->get());
  EXPECT_EQ((*reloaded)->version, "added_a.index");
  EXPECT_EQ(StateOf(*registry, "a"), SpeakerState::kLoaded);
  EXPECT_EQ(observer_.loads("a"), 2);
  EXPECT_THAT(observer_.evictions(), IsEmpty());  // an unload is not an eviction
}

TEST_F(SpeakerRegistryBudgetTest, UnloadErrorsNameTheSpeaker) {
  auto registry = MakeBudgetRegistry(BudgetForTwo());
  ASSERT_NE(registry, nullptr);
  EXPECT_THAT(registry->Unload("nobody"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("'nobody'")));
  EXPECT_THAT(registry->Unload("../a"), StatusIs(absl::StatusCode::kInvalidArgument, _));
  observer_.Hold("c");
  registry->AcquireAsync("c", [](absl::StatusOr<std::shared_ptr<const IndexSnapshot>>) {});
  ASSERT_TRUE(WaitFor([&] { return observer_.held(); }));
  EXPECT_THAT(registry->Unload("c"), StatusIs(absl::StatusCode::kFailedPrecondition,
                                              AllOf(HasSubstr("'c'"), HasSubstr("being loaded"))));
  observer_.Release();
  EXPECT_TRUE(WaitFor([&] { return StateOf(*registry, "c") == SpeakerState::kLoaded; }));
}

TEST_F(SpeakerRegistryBudgetTest, SpeakerLargerThanTheBudgetFailsNamingSizes) {
  const int64_t budget = index_bytes_ / 2;
  auto registry = MakeBudgetRegistry(budget);
  ASSERT_NE(registry, nullptr);
  const std::string sizes = absl::StrCat("more than the whole memory budget of ", budget, " bytes");
  auto status = registry->Get("a");
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->state, SpeakerState::kFailed);
  EXPECT_THAT(status->error, AllOf(HasSubstr("'a'"), HasSubstr(sizes)));
  const absl::Status refused = registry->Acquire("a").status();
  EXPECT_THAT(refused,
              StatusIs(absl::StatusCode::kResourceExhausted, AllOf(HasSubstr("'a'"), HasSubstr(sizes))));
  EXPECT_EQ(RejectionReasonOf(refused), RejectionReason::kTooLarge) << "not overloaded";
  EXPECT_EQ(registry->Usage().memory_bytes, 0);
  // Unloaded and called again, it fails the same way, now at its load.
  ASSERT_THAT(registry->Unload("a"), IsOk());
  const absl::Status at_load = registry->Acquire("a").status();
  EXPECT_THAT(at_load, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr(sizes)));
  EXPECT_EQ(RejectionReasonOf(at_load), RejectionReason::kTooLarge);
}

TEST_F(SpeakerRegistryBudgetTest, MappedSpeakerLargerThanTheBudgetFailsOnceLoaded) {
  auto registry = MakeBudgetRegistry(100, /*mmap=*/true);
  ASSERT_NE(registry, nullptr);
  // Memory-mapped indexes are charged only what they hold in the heap, known after the load.
  EXPECT_THAT(registry->Acquire("a"),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("'a'"), HasSubstr("memory budget of 100 bytes"))));
  EXPECT_EQ(StateOf(*registry, "a"), SpeakerState::kFailed);
  EXPECT_EQ(registry->Usage().memory_bytes, 0);
}

TEST_F(SpeakerRegistryBudgetTest, MappedIndexesAreNotChargedAndServeTheSameResults) {
  auto mapped = MakeBudgetRegistry(BudgetForTwo(), /*mmap=*/true);
  ASSERT_NE(mapped, nullptr);
  // The heap parts of all three fit where two whole indexes would.
  const RegistryUsage usage = mapped->Usage();
  EXPECT_EQ(usage.speakers[static_cast<int>(SpeakerState::kLoaded)], 3);
  EXPECT_LT(usage.memory_bytes, index_bytes_);
  EXPECT_EQ(usage.mapped_bytes,
            3 * static_cast<int64_t>(fs::file_size(scratch_.Join("a/added_a.index"))));
  auto in_heap = FaissIndex::Load(scratch_.Join("b/added_b.index"));
  ASSERT_THAT(in_heap, IsOk());
  auto snapshot = mapped->Acquire("b");
  ASSERT_THAT(snapshot, IsOk());
  const FaissIndex& index = *(*snapshot)->index;
  EXPECT_GT(index.mapped_bytes(), 0);
  const FrameMatrix queries = GenerateClusteredFrames(20, kDim, 4, 77);
  SearchParams params;
  params.k = 5;
  std::vector<float> scores_a(20 * 5), scores_b(20 * 5);
  std::vector<int64_t> ids_a(20 * 5), ids_b(20 * 5);
  ASSERT_THAT(index.Search(queries.values.data(), 20, params, 1, scores_a.data(), ids_a.data()),
              IsOk());
  ASSERT_THAT((*in_heap)->Search(queries.values.data(), 20, params, 1, scores_b.data(),
                                 ids_b.data()),
              IsOk());
  EXPECT_EQ(ids_a, ids_b);
  EXPECT_EQ(scores_a, scores_b);
}

TEST_F(SpeakerRegistryBudgetTest, WarmupOnLoadWarmsEveryLoad) {
  auto registry = MakeBudgetRegistry(BudgetForTwo(), /*mmap=*/false, /*warmup=*/true);
  ASSERT_NE(registry, nullptr);
  auto a = registry->Acquire("a");
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ((*a)->warmup_frames, WarmupOptions().batches * WarmupOptions().frames_per_batch);
  auto c = registry->Acquire("c");  // loaded on demand
  ASSERT_THAT(c, IsOk());
  EXPECT_GT((*c)->warmup_frames, 0);
}

TEST_F(SpeakerRegistryBudgetTest, LoadLoadsNowWithWarmupAndRetriesFailures) {
  WriteFile(scratch_.Join("d/added_d.index"), "not an index");
  auto registry = MakeBudgetRegistry(BudgetForTwo());
  ASSERT_NE(registry, nullptr);
  auto load = [&](const std::string& speaker, bool warmup) {
    absl::Notification done;
    absl::StatusOr<SpeakerStatus> result;
    registry->Load(speaker, warmup, [&](absl::StatusOr<SpeakerStatus> status) {
      result = std::move(status);
      done.Notify();
    });
    done.WaitForNotification();
    return result;
  };
  auto a = load("a", false);  // already loaded: answered as it is
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(a->state, SpeakerState::kLoaded);
  EXPECT_EQ(a->snapshot->warmup_frames, 0);

  auto c = load("c", true);
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->state, SpeakerState::kLoaded);
  ASSERT_NE(c->snapshot, nullptr);
  EXPECT_GT(c->snapshot->warmup_frames, 0);
  EXPECT_EQ(StateOf(*registry, "c"), SpeakerState::kLoaded);

  EXPECT_THAT(load("d", false), StatusIs(absl::StatusCode::kFailedPrecondition,
                                         AllOf(HasSubstr("'d'"), HasSubstr("added_d.index"))));
  EXPECT_THAT(load("d", false), StatusIs(absl::StatusCode::kFailedPrecondition, _));
  // The scan's load and one per Load: Load retries a failed speaker, a call does not.
  EXPECT_EQ(observer_.loads("d"), 3);
  EXPECT_THAT(registry->Acquire("d"), StatusIs(absl::StatusCode::kFailedPrecondition, _));
  EXPECT_EQ(observer_.loads("d"), 3);
  EXPECT_THAT(load("nobody", false), StatusIs(absl::StatusCode::kNotFound, HasSubstr("nobody")));
  EXPECT_THAT(load("-x", false), StatusIs(absl::StatusCode::kInvalidArgument, _));
}

TEST_F(SpeakerRegistryBudgetTest, SpeakerWithoutAServableVersionIsAFailedLoad) {
  WriteRvcFile("e", "added_e1.index", 400, 20);
  WriteRvcFile("e", "added_e2.index", 400, 21);
  auto registry = MakeBudgetRegistry(BudgetForTwo());
  ASSERT_NE(registry, nullptr);
  EXPECT_EQ(StateOf(*registry, "e"), SpeakerState::kFailed);
  EXPECT_THAT(registry->Get("e")->error, HasSubstr("2 index files"));
  // Told to the observer (and so to the load metrics) like any failed load.
  EXPECT_EQ(observer_.loads("e"), 1);
}

TEST_F(SpeakerRegistryBudgetTest, NewVersionThatFitsOnlyAloneReplacesTheOld) {
  fs::remove_all(scratch_.Join("b"));
  fs::remove_all(scratch_.Join("c"));
  auto registry = MakeBudgetRegistry(index_bytes_ + index_bytes_ / 2);
  ASSERT_NE(registry, nullptr);
  auto old_snapshot = registry->Acquire("a");
  ASSERT_THAT(old_snapshot, IsOk());
  ASSERT_EQ(Publish("a", 400, 5), "1");
  ASSERT_THAT(registry->Refresh(), IsOk());
  auto new_snapshot = registry->Acquire("a");
  ASSERT_THAT(new_snapshot, IsOk());
  EXPECT_EQ((*new_snapshot)->version, "1");
  EXPECT_TRUE(SearchFindsItself(*(*old_snapshot)->index));
  EXPECT_EQ(observer_.over_budget(), 0);
  EXPECT_LE(registry->Usage().memory_bytes, index_bytes_ + index_bytes_ / 2);
}

TEST_F(SpeakerRegistryBudgetTest, RemovedSpeakerReturnsItsMemory) {
  auto registry = MakeBudgetRegistry(BudgetForTwo());
  ASSERT_NE(registry, nullptr);
  fs::remove_all(scratch_.Join("a"));
  ASSERT_THAT(registry->Refresh(), IsOk());
  EXPECT_EQ(registry->Usage().memory_bytes, bytes_["b"]);
  // Its room goes to c without evicting b.
  ASSERT_THAT(registry->Acquire("c"), IsOk());
  EXPECT_THAT(observer_.evictions(), IsEmpty());
}

TEST_F(SpeakerRegistryBudgetTest, StopAnswersQueuedLoadsUnavailable) {
  fs::remove_all(scratch_.Join("a"));
  fs::remove_all(scratch_.Join("b"));
  WriteRvcFile("d", "added_d.index", 400, 20);
  auto registry = MakeBudgetRegistry(index_bytes_ / 2 * 3);
  ASSERT_NE(registry, nullptr);
  ASSERT_THAT(registry->Unload("c"), IsOk());
  ASSERT_THAT(registry->Unload("d"), IsOk());
  observer_.Hold("c");
  absl::Notification c_answered;
  registry->AcquireAsync("c", [&](absl::StatusOr<std::shared_ptr<const IndexSnapshot>> s) {
    EXPECT_THAT(s, IsOk());
    c_answered.Notify();
  });
  ASSERT_TRUE(WaitFor([&] { return observer_.held(); }));
  absl::Notification d_answered;
  registry->AcquireAsync("d", [&](absl::StatusOr<std::shared_ptr<const IndexSnapshot>> s) {
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kUnavailable,
                            AllOf(HasSubstr("'d'"), HasSubstr("stopping"))));
    d_answered.Notify();
  });
  std::thread stopper([&] { registry->Stop(); });
  // The queued load is answered at once; the running one finishes.
  EXPECT_TRUE(d_answered.WaitForNotificationWithTimeout(absl::Seconds(20)));
  observer_.Release();
  stopper.join();
  EXPECT_TRUE(c_answered.HasBeenNotified());
  EXPECT_EQ(StateOf(*registry, "d"), SpeakerState::kUnloaded);
  EXPECT_THAT(registry->Acquire("d"),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("stopping")));
  EXPECT_THAT(registry->Acquire("c"), IsOk());
}

TEST_F(SpeakerRegistryBudgetTest, NegativeBudgetIsRejected) {
  SpeakerRegistry::Options options;
  options.repository = repository_.get();
  options.memory_budget_bytes = -1;
  EXPECT_THAT(SpeakerRegistry::Create(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("-1 bytes")));
}

}  // namespace
}  // namespace timbre
