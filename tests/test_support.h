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

// The body of GET /metrics from a Prometheus endpoint on the loopback `port`; empty if it cannot
// be reached.
std::string ScrapeMetrics(int port);

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

}  // namespace timbre::testing

#endif  // TIMBRE_TESTS_TEST_SUPPORT_H_
