// WaitForServingVersion against fake replicas whose GetSpeaker answers change over time: done
// when each replica holding the speaker serves the version (or a later one) or has it unloaded;
// a builder is skipped; a replica behind or unknown to the speaker times out, named.
#include "client/cli/version_wait.h"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "tests/support/server_test_support.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::StatusIs;

// A replica whose GetSpeaker answers the given versions in turn ("" = NOT_FOUND, "-" =
// unloaded), repeating the last one.
class FakeReplica final : public v1::Timbre::Service {
 public:
  explicit FakeReplica(std::vector<std::string> versions) : versions_(std::move(versions)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakeReplica() override { server_->Shutdown(); }
  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }

  grpc::Status GetSpeaker(grpc::ServerContext*, const v1::GetSpeakerRequest* request,
                          v1::SpeakerInfo* info) override {
    const size_t call = std::min<size_t>(calls_.fetch_add(1), versions_.size() - 1);
    const std::string& version = versions_[call];
    if (version.empty()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "speaker not found");
    info->set_name(request->speaker());
    if (version == "-") {
      info->set_state(v1::SpeakerInfo::STATE_UNLOADED);
    } else {
      info->set_state(v1::SpeakerInfo::STATE_LOADED);
      info->set_version(version);
    }
    return grpc::Status::OK;
  }

 private:
  const std::vector<std::string> versions_;
  std::atomic<size_t> calls_{0};
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// A builder: no timbre.v1.Timbre at all.
class FakeBuilder {
 public:
  FakeBuilder() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&health_);
    server_ = builder.BuildAndStart();
  }
  ~FakeBuilder() { server_->Shutdown(); }
  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  grpc::health::v1::Health::Service health_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

VersionWaitOptions Targets(const std::vector<std::string>& targets, absl::Duration timeout) {
  VersionWaitOptions options;
  options.timeout = timeout;
  options.poll_interval = absl::Milliseconds(10);
  for (const std::string& target : targets) {
    TimbreClient::Options client;
    client.target = target;
    options.targets.push_back(client);
  }
  return options;
}

TEST(VersionWaitTest, WaitsUntilEveryReplicaHoldingTheSpeakerServesTheVersion) {
  FakeReplica catching_up({"1", "1", "1", "2"});
  FakeReplica ahead({"3"});
  FakeReplica unloaded({"", "-"});  // scans the new speaker, then has it unloaded
  FakeBuilder builder;
  auto lines = WaitForServingVersion(
      Targets({catching_up.target(), ahead.target(), unloaded.target(), builder.target()},
              absl::Seconds(20)),
      "alice", "2");
  ASSERT_THAT(lines, IsOk());
  EXPECT_THAT(*lines, ElementsAre(HasSubstr("serves version 2"), HasSubstr("serves version 3"),
                                  HasSubstr("not loaded"), HasSubstr("UNIMPLEMENTED")));
}

TEST(VersionWaitTest, AReplicaBehindTimesOutNamed) {
  FakeReplica behind({"1"});
  FakeReplica unknown({""});
  FakeReplica current({"2"});
  EXPECT_THAT(WaitForServingVersion(
                  Targets({behind.target(), unknown.target(), current.target()},
                          absl::Milliseconds(300)),
                  "alice", "2"),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       AllOf(HasSubstr("speaker 'alice' version 2"),
                             HasSubstr(behind.target() + ": serves version 1"),
                             HasSubstr(unknown.target() + ": NOT_FOUND"),
                             ::testing::Not(HasSubstr(current.target())))));
}

TEST(VersionWaitTest, NeedsATarget) {
  EXPECT_THAT(WaitForServingVersion(VersionWaitOptions(), "alice", "2"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no replica")));
}

}  // namespace
}  // namespace timbre
