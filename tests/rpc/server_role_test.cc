// Server roles: names parsed and refused, and what a real server of each role offers: the
// services it registers, the health it reports, and the clear refusal of the others.
#include "server/rpc/server_role.h"

#include <filesystem>

#include "server/timbre_server.h"
#include "tests/support/server_test_support.h"
#include "timbre/builder_client.h"

namespace timbre {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::timbre::testing::CheckHealth;
using ::timbre::testing::IsOk;
using ::timbre::testing::IsOkAndHolds;
using ::timbre::testing::StatusIs;
using Health = grpc::health::v1::HealthCheckResponse;

TEST(ServerRoleTest, ParsesTheThreeRolesAndRefusesOthers) {
  for (ServerRole role : {ServerRole::kAll, ServerRole::kServing, ServerRole::kBuilder}) {
    EXPECT_THAT(ParseServerRole(ServerRoleName(role)), IsOkAndHolds(role));
  }
  EXPECT_THAT(ParseServerRole("leader"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("--role is 'leader'; use all, serving or builder")));
  EXPECT_THAT(ParseServerRole(""), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("''")));
}

class ServerRoleServerTest : public ::testing::Test {
 protected:
  std::unique_ptr<TimbreServer> Start(ServerRole role) {
    TimbreServer::Options options = testing::FixtureServerOptions(repo_);
    options.role = role;
    return testing::StartServer(options);
  }
  std::unique_ptr<BuilderClient> Builder(int port) {
    auto builder = BuilderClient::Create(testing::LocalClientOptions(port));
    EXPECT_THAT(builder, IsOk());
    return builder.ok() ? *std::move(builder) : nullptr;
  }

  testing::ScratchDir repo_;
};

TEST_F(ServerRoleServerTest, BuilderServesOnlyTheIndexBuilder) {
  auto server = Start(ServerRole::kBuilder);
  ASSERT_NE(server, nullptr);
  auto client = testing::MakeClient(testing::LocalClientOptions(server->port()));
  v1::BlendRequest request = testing::FixtureBlendRequest(testing::ReadFixtureQueries(), 4);
  EXPECT_THAT(client->Blend(request),
              StatusIs(absl::StatusCode::kUnimplemented,
                       AllOf(HasSubstr("runs --role=builder"),
                             HasSubstr("'/timbre.v1.Timbre/Blend'"),
                             HasSubstr("replica with --role=serving or all"))));
  EXPECT_THAT(client->ListSpeakers(), StatusIs(absl::StatusCode::kUnimplemented,
                                               HasSubstr("/timbre.v1.Timbre/ListSpeakers")));
  auto builder = Builder(server->port());
  EXPECT_THAT(builder->ListJobs(), IsOk());
  EXPECT_THAT(CheckHealth(server->port(), ""), IsOkAndHolds(Health::SERVING));
  EXPECT_THAT(CheckHealth(server->port(), "timbre.v1.IndexBuilder"), IsOkAndHolds(Health::SERVING));
  EXPECT_THAT(CheckHealth(server->port(), "timbre.v1.Timbre"),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST_F(ServerRoleServerTest, ServingOffersNoBuildsAndKeepsNoJobQueue) {
  auto server = Start(ServerRole::kServing);
  ASSERT_NE(server, nullptr);
  auto client = testing::MakeClient(testing::LocalClientOptions(server->port()));
  EXPECT_THAT(client->Blend(testing::FixtureBlendRequest(testing::ReadFixtureQueries(), 4)),
              IsOk());
  auto builder = Builder(server->port());
  EXPECT_THAT(builder->ListJobs(),
              StatusIs(absl::StatusCode::kUnimplemented,
                       AllOf(HasSubstr("runs --role=serving"),
                             HasSubstr("'/timbre.v1.IndexBuilder/ListJobs'"),
                             HasSubstr("replica with --role=builder or all"))));
  EXPECT_THAT(CheckHealth(server->port(), "timbre.v1.Timbre"), IsOkAndHolds(Health::SERVING));
  EXPECT_THAT(CheckHealth(server->port(), "timbre.v1.IndexBuilder"),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  // The builder owns the work directory: a serving replica does not even create it.
  EXPECT_FALSE(std::filesystem::exists(repo_.Join(".timbre/jobs")));
}

TEST_F(ServerRoleServerTest, AllServesBoth) {
  auto server = Start(ServerRole::kAll);
  ASSERT_NE(server, nullptr);
  auto client = testing::MakeClient(testing::LocalClientOptions(server->port()));
  EXPECT_THAT(client->Blend(testing::FixtureBlendRequest(testing::ReadFixtureQueries(), 4)),
              IsOk());
  EXPECT_THAT(Builder(server->port())->ListJobs(), IsOk());
  EXPECT_THAT(CheckHealth(server->port(), "timbre.v1.IndexBuilder"), IsOkAndHolds(Health::SERVING));
  EXPECT_THAT(CheckHealth(server->port(), "timbre.v1.Timbre"), IsOkAndHolds(Health::SERVING));
}

}  // namespace
}  // namespace timbre
