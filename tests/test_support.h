// Shared test helpers: a scratch directory, status matchers and small real indexes.
#ifndef TIMBRE_TESTS_TEST_SUPPORT_H_
#define TIMBRE_TESTS_TEST_SUPPORT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/frame_codec.h"

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

// Trains IVF{nlist},Flat (L2, nprobe 1) on `frames` as RVC does and writes it to `path`.
void WriteRvcIndex(const FrameMatrix& frames, int nlist, const std::string& path);

// Polls `condition` every few milliseconds until it holds or `timeout` passes; returns whether
// it held. For waiting on state changes without fixed sleeps.
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout = absl::Seconds(20));

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

#endif  // TIMBRE_TESTS_TEST_SUPPORT_H_
