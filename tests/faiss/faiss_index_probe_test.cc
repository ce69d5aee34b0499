#include "server/faiss/faiss_index_probe.h"

#include <pthread.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "server/faiss/faiss_index.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::ReadFile;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;
using ::timbre::testing::WriteFile;

// The bytes of a one-vector "Flat" index of dim 4. faiss 1.7's IndexFlat layout: "IxF2", d
// (int32), ntotal (int64), two int64 dummies, is_trained (1 byte), metric (int32), then the
// codes as a count of floats (uint64, at byte 37) and the floats.
std::string OneVectorFlatIndex(const ScratchDir& dir) {
  const std::vector<float> one = {1.0f, 2.0f, 3.0f, 4.0f};
  TrainOptions options;
  options.description = "Flat";
  auto index = FaissIndex::Train(options, one.data(), 1, 4);
  EXPECT_THAT(index, IsOk());
  if (!index.ok()) return "";
  EXPECT_THAT((*index)->Write(dir.Join("one.index")), IsOk());
  return ReadFile(dir.Join("one.index"));
}

TEST(FaissIndexProbeTest, ValidIndexPasses) {
  ScratchDir dir;
  ASSERT_FALSE(OneVectorFlatIndex(dir).empty());
  EXPECT_THAT(ProbeFaissIndexFile(dir.Join("one.index")), IsOk());
}

TEST(FaissIndexProbeTest, FaissErrorIsInvalidArgumentWithItsReason) {
  ScratchDir dir;
  WriteFile(dir.Join("text.index"), "not an index");
  EXPECT_THAT(ProbeFaissIndexFile(dir.Join("text.index")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("text.index"), HasSubstr("not a readable faiss index"))));
}

TEST(FaissIndexProbeTest, MissingOrIrregularFileIsRefusedBeforeTheProbeStarts) {
  ScratchDir dir;
  EXPECT_THAT(ProbeFaissIndexFile(dir.Join("missing.index")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.index")));
  EXPECT_THAT(ProbeFaissIndexFile(dir.path()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a regular file")));
}

TEST(FaissIndexProbeTest, FileClaimingHugeVectorsIsRefusedByTheProbesMemoryLimit) {
  // A 45-byte file whose float count claims 16 GiB: faiss would allocate (and zero) all of it
  // before noticing the file ends. The probe's address-space limit stops it; the server's memory
  // is never touched.
  ScratchDir dir;
  std::string bytes = OneVectorFlatIndex(dir);
  if (bytes.size() != 61 || bytes.compare(0, 4, "IxF2") != 0) {
    GTEST_SKIP() << "unexpected IndexFlat layout in this faiss version";
  }
  const uint64_t floats = uint64_t{4} << 30;
  std::memcpy(bytes.data() + 37, &floats, 8);
  bytes.resize(45);
  WriteFile(dir.Join("huge.index"), bytes);
  IndexProbeOptions options;
  options.memory_base_bytes = int64_t{256} << 20;
  EXPECT_THAT(ProbeFaissIndexFile(dir.Join("huge.index"), options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("huge.index")));
  EXPECT_THAT(FaissIndex::Load(dir.Join("huge.index")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("huge.index")));
}

TEST(FaissIndexProbeTest, ReaderThatTakesTooLongIsStopped) {
  // A zero timeout: the probe is killed at the first check, whatever the file.
  ScratchDir dir;
  ASSERT_FALSE(OneVectorFlatIndex(dir).empty());
  IndexProbeOptions options;
  options.timeout = absl::ZeroDuration();
  EXPECT_THAT(ProbeFaissIndexFile(dir.Join("one.index"), options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("took more than")));
}

TEST(FaissIndexProbeTest, IndexThatCrashesOnceReadIsRefusedAndTheCallerLives) {
  // Found by the faiss_index fuzzer: faiss reads this IVF-PQ file, but its product quantizer's
  // tables do not match its codes and decoding the stored vectors (a step of every load)
  // dereferences null. The whole load runs in the probe, so only the probe dies (of the signal;
  // in a sanitizer build, by the sanitizer's exit after its report).
  const std::string path = std::string(std::getenv("TIMBRE_TEST_DATA")) + "/pq_tables_mismatch.index";
  EXPECT_THAT(ProbeFaissIndexFile(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("pq_tables_mismatch.index"),
                             HasSubstr("not a readable faiss index"))));
  EXPECT_THAT(FaissIndex::Load(path), StatusIs(absl::StatusCode::kInvalidArgument,
                                               HasSubstr("not a readable faiss index")));
}

TEST(FaissIndexProbeTest, LoadErrorsComeBackWithTheirCodeAndMessage) {
  // The load's own checks (here: a Flat index of no vectors is refused) answer as they would in
  // the server.
  ScratchDir dir;
  IndexProbeOptions options;
  options.vectors_path = dir.Join("missing.vectors");
  ASSERT_FALSE(OneVectorFlatIndex(dir).empty());
  const absl::Status probed = ProbeFaissIndexFile(dir.Join("one.index"), options);
  IndexLoadOptions load;
  load.vectors_path = options.vectors_path;
  load.probe_in_child = false;
  const absl::Status loaded = FaissIndex::Load(dir.Join("one.index"), load).status();
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(probed, loaded);
}

TEST(FaissIndexProbeTest, MissingProbeProgramIsUnavailableNamingIt) {
  ScratchDir dir;
  ASSERT_FALSE(OneVectorFlatIndex(dir).empty());
  IndexProbeOptions options;
  options.program = dir.Join("no-such-probe");
  EXPECT_THAT(ProbeFaissIndexFile(dir.Join("one.index"), options),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("timbre-index-probe"), HasSubstr("no-such-probe"))));
}

std::atomic<int> fork_handlers_run{0};

TEST(FaissIndexProbeTest, ProbeRunsNoForkHandlers) {
  // A fork runs every pthread_atfork handler of the process; OpenBLAS's joins its worker threads
  // and can deadlock there (a load after a build hung for ever). The probe must not fork.
  ScratchDir dir;
  ASSERT_FALSE(OneVectorFlatIndex(dir).empty());
  ASSERT_EQ(pthread_atfork([] { ++fork_handlers_run; }, nullptr, nullptr), 0);
  EXPECT_THAT(ProbeFaissIndexFile(dir.Join("one.index")), IsOk());
  EXPECT_EQ(fork_handlers_run.load(), 0);
}

TEST(FaissIndexProbeTest, ProbeProgramRefusesBadArguments) {
  for (const std::string arguments : {"", " one.index", " one.index 2 0", " one.index 0 -5",
                                      " one.index 0 12x", " one.index 0 0 v w"}) {
    const std::string command = TIMBRE_INDEX_PROBE_BUILD_PATH + arguments + " 2>/dev/null";
    const int status = std::system(command.c_str());
    ASSERT_TRUE(WIFEXITED(status)) << arguments;
    EXPECT_EQ(WEXITSTATUS(status), static_cast<int>(IndexProbeExit::kUsage)) << arguments;
  }
}

}  // namespace
}  // namespace timbre
