// WaitForServingVersion: after a build, waits until every replica that holds the speaker serves
// the new version, so that `timbre build` through a load balancer can say when the cluster has
// it.
//
// What is checked, exactly: GetSpeaker(speaker) on each target (the balancer, which routes the
// call by its x-timbre-speaker header to the replica that serves the speaker, and each replica
// given directly). A target is done when it
//   - has the speaker loaded at `version` or a later number (it serves it now), or
//   - knows the speaker but has it unloaded (its next call loads the newest version), or
//   - offers no timbre.v1.Timbre (UNIMPLEMENTED: a builder), which serves no calls.
// It is not done while it has an older version loaded, or does not know the speaker yet
// (NOT_FOUND: its next scan finds it), or cannot be reached.
//
// Thread-compatible.
#ifndef TIMBRE_CLIENT_CLI_VERSION_WAIT_H_
#define TIMBRE_CLIENT_CLI_VERSION_WAIT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "timbre/timbre_client.h"

namespace timbre {

struct VersionWaitOptions {
  // Client options of each target (target = host:port; the other fields as for any call).
  // Required: at least one.
  std::vector<TimbreClient::Options> targets;
  // How long to wait in all. Default 60 s.
  absl::Duration timeout = absl::Seconds(60);
  // Pause between two rounds of checks. Default 100 ms.
  absl::Duration poll_interval = absl::Milliseconds(100);
};

// Waits until every target is done (see above) with `speaker` at `version`. Returns one line
// per target saying what it serves. Errors: INVALID_ARGUMENT without targets or with a bad
// target; DEADLINE_EXCEEDED after `timeout`, naming each target not done and what it answered.
absl::StatusOr<std::vector<std::string>> WaitForServingVersion(const VersionWaitOptions& options,
                                                               const std::string& speaker,
                                                               const std::string& version);

}  // namespace timbre

#endif  // TIMBRE_CLIENT_CLI_VERSION_WAIT_H_
