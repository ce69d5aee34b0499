#include "client/cli/version_wait.h"

#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace timbre {
namespace {

// Whether `serving` is `wanted` or, both being numbers, a later one.
bool AtLeast(const std::string& serving, const std::string& wanted) {
  int64_t have = 0;
  int64_t want = 0;
  if (absl::SimpleAtoi(serving, &have) && absl::SimpleAtoi(wanted, &want)) return have >= want;
  return serving == wanted;
}

// Whether the target that answered `info` is done; `line` says what it serves.
bool Done(const absl::StatusOr<v1::SpeakerInfo>& info, const std::string& version,
          std::string* line) {
  if (!info.ok()) {
    *line = info.status().ToString();
    return info.status().code() == absl::StatusCode::kUnimplemented;
  }
  switch (info->state()) {
    case v1::SpeakerInfo::STATE_LOADED:
      *line = absl::StrCat("serves version ", info->version());
      return AtLeast(info->version(), version);
    case v1::SpeakerInfo::STATE_UNLOADED:
      *line = "not loaded (its next call loads the newest version)";
      return true;
    case v1::SpeakerInfo::STATE_FAILED:
      *line = absl::StrCat("failed: ", info->error());
      return false;
    default:
      *line = "loading";
      return false;
  }
}

}  // namespace

absl::StatusOr<std::vector<std::string>> WaitForServingVersion(const VersionWaitOptions& options,
                                                               const std::string& speaker,
                                                               const std::string& version) {
  if (options.targets.empty()) return absl::InvalidArgumentError("no replica to check");
  std::vector<std::unique_ptr<TimbreClient>> clients;
  for (TimbreClient::Options target : options.targets) {
    target.timeout = std::min(target.timeout, absl::Seconds(5));
    auto client = TimbreClient::Create(target);
    if (!client.ok()) return client.status();
    clients.push_back(*std::move(client));
  }
  const absl::Time deadline = absl::Now() + options.timeout;
  std::vector<std::string> lines(clients.size());
  std::vector<char> done(clients.size(), 0);
  for (;;) {
    bool all = true;
    for (size_t i = 0; i < clients.size(); ++i) {
      if (done[i]) continue;
      std::string line;
      done[i] = Done(clients[i]->GetSpeaker(speaker), version, &line);
      lines[i] = absl::StrCat(options.targets[i].target, ": ", line);
      all = all && done[i];
    }
    if (all) return lines;
    if (absl::Now() + options.poll_interval > deadline) break;
    absl::SleepFor(options.poll_interval);
  }
  std::vector<std::string> late;
  for (size_t i = 0; i < clients.size(); ++i) {
    if (!done[i]) late.push_back(lines[i]);
  }
  return absl::DeadlineExceededError(absl::StrCat(
      "after ", absl::FormatDuration(options.timeout), ", not every replica serves speaker '",
      speaker, "' version ", version, ": ", absl::StrJoin(late, "; ")));
}

}  // namespace timbre
