// Shared test helpers: a scratch directory, status matchers and small real indexes.
#ifndef TIMBRE_TESTS_SUPPORT_TEST_SUPPORT_H_
#define TIMBRE_TESTS_SUPPORT_TEST_SUPPORT_H_

#include <memory>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/faiss/build_control.h"
#include "server/faiss/faiss_index.h"
#include "server/io/frame_codec.h"

namespace timbre::testing {

// A fresh directory under $TMPDIR, removed with everything in it on destruction.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  const std::string& path() const { return path_; }
  std::string Join(const std::string& relative) const { return path_ + "/" + relative; }

 private:
  std::string path_;
};

// Writes `contents` to `path` (creating parent directories).
void WriteFile(const std::string& path, const std::string& contents);
std::string ReadFile(const std::string& path);
// The names in `dir`, sorted; empty if it cannot be read. For checking that nothing was left.
std::vector<std::string> ListDir(const std::string& dir);

// The path of a file in tests/data ($TIMBRE_TEST_DATA, which every test has).
std::string DataPath(const std::string& name);

// Trains `description` (an index_factory string) with `metric` and stored `nprobe` on all of
// `frames`; on error fails the test and returns null.
std::unique_ptr<FaissIndex> TrainOrDie(const std::string& description, Metric metric,
                                       const FrameMatrix& frames, int nprobe = 1,
                                       int k_factor = 0);

// `count` queries ([count, dim]): stored vectors of `index` picked at random, plus Gaussian noise
// of `sigma`.
std::vector<float> QueriesNear(const FaissIndex& index, int count, float sigma, uint32_t seed);

// `count` small integers in [-range, range], uniformly at random from `seed`, as floats: every
// distance between vectors of them is exact in float, and ties are frequent.
std::vector<float> SmallIntegers(int64_t count, int range, uint32_t seed);

// A format 1.0 .npy magic string and header holding the dict text `dict` (e.g. "{'descr': '<f4',
// 'fortran_order': False, 'shape': (2, 3), }"), padded as numpy pads it; the data follows it.
std::string NpyHeaderBytes(const std::string& dict);

// Trains IVF{nlist},Flat (L2, nprobe 1) on `frames` as RVC does and writes it to `path`.
void WriteRvcIndex(const FrameMatrix& frames, int nlist, const std::string& path);

// Polls `condition` every few milliseconds until it holds or `timeout` passes; returns whether
// it held. For waiting on state changes without fixed sleeps.
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout = absl::Seconds(20));

// A BuildControl that records the progress reported and is cancelled on demand: by Cancel(),
// after a number of progress reports, or after a number of cancelled() polls. Thread-safe.
class FakeBuildControl : public BuildControl {
 public:
  struct Report {
    double fraction;
    std::string message;
  };

  void Cancel() { cancelled_ = true; }
  // Cancels itself inside the `reports`-th Progress() call.
  void CancelAtReport(int reports) ABSL_LOCKS_EXCLUDED(mutex_);
  // Answers "not cancelled" to the first `polls` cancelled() calls and "cancelled" after them.
  void CancelAfterPolls(int polls) { polls_left_ = polls; }

  bool cancelled() const override;
  void Progress(double fraction, absl::string_view message) override ABSL_LOCKS_EXCLUDED(mutex_);

  std::vector<Report> reports() const ABSL_LOCKS_EXCLUDED(mutex_);
  std::vector<double> fractions() const ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  mutable std::atomic<bool> cancelled_{false};
  mutable std::atomic<int> polls_left_{-1};  // -1: not counting
  mutable absl::Mutex mutex_;
  std::vector<Report> reports_ ABSL_GUARDED_BY(mutex_);
  int cancel_at_report_ ABSL_GUARDED_BY(mutex_) = 0;
};

// Runs `promtool check metrics` (Debian package `prometheus`) on a Prometheus text exposition
// and expects it to pass without complaints. Fails the test, saying how to install promtool, if
// it is not on PATH.
void ExpectPromtoolClean(const std::string& exposition);

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

// EXPECT_THAT(result, StatusIs(absl::StatusCode::kNotFound, HasSubstr("alice")))
MATCHER_P2(StatusIs, code, message_matcher, "") {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(status.message()),
                                       result_listener);
}

MATCHER(IsOk, "") {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.ok();
}

// EXPECT_THAT(result, IsOkAndHolds(42)): an OK StatusOr whose value matches.
MATCHER_P(IsOkAndHolds, value_matcher, "") {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(value_matcher, *arg, result_listener);
}

}  // namespace timbre::testing

#endif  // TIMBRE_TESTS_SUPPORT_TEST_SUPPORT_H_
