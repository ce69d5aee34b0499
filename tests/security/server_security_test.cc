// MakeServerSecurity: checks of the TLS and token files and the warnings for an operator; then
// real servers on loopback ports with TLS, mutual TLS and bearer tokens, called through the client
// library, and the rotation of their files while they serve. The TLS files are made at test time
// by tests/data/make_test_certs.sh (openssl).
#include "server/security/server_security.h"

#include <sys/stat.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/generic/generic_stub.h"
#include "tests/support/server_test_support.h"

namespace timbre {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::timbre::testing::CheckHealth;
using ::timbre::testing::IsOk;
using ::timbre::testing::IsOkAndHolds;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;
using ::timbre::testing::WaitFor;
using ::timbre::testing::WriteFile;
using ::timbre::testing::kAdminMethod;
using ::timbre::testing::kAdminToken;
using ::timbre::testing::kNewUserToken;
using ::timbre::testing::kUserToken;
using Code = absl::StatusCode;

class ServerSecurityTest : public timbre::testing::TestWithCertificates {
 protected:
  static void SetUpTestSuite() {
    TestWithCertificates::SetUpTestSuite();
    WriteFile(Cert("user.tokens"), absl::StrCat("# user\n", kUserToken, "\n"));
    WriteFile(Cert("admin.tokens"), absl::StrCat(kAdminToken, "\n"));
    for (const char* tokens : {"user.tokens", "admin.tokens"}) chmod(Cert(tokens).c_str(), 0600);
  }

  static SecurityOptions Tls() {
    SecurityOptions options;
    options.tls_cert_file = Cert("server.pem");
    options.tls_key_file = Cert("server.key");
    return options;
  }

  // TLS with server.pem and server.key, copied to files that tests may rotate, re-read every
  // second.
  SecurityOptions LiveTls() const {
    CopyCert("server.pem", live_.Join("cert.pem"));
    CopyCert("server.key", live_.Join("key.pem"));
    SecurityOptions options;
    options.tls_cert_file = live_.Join("cert.pem");
    options.tls_key_file = live_.Join("key.pem");
    options.reload_interval = absl::Seconds(1);
    return options;
  }

  // Starts a server serving the fixture with `security`, and metrics on a free loopback port.
  void Start(const SecurityOptions& security) {
    TimbreServer::Options options = timbre::testing::FixtureServerOptions(repo_);
    options.security = security;
    options.metrics_host = "127.0.0.1";
    options.metrics_port = 0;
    server_ = timbre::testing::StartServer(options);
    ASSERT_NE(server_, nullptr);
  }

  // A client of the server that trusts the test CA (or the CA `ca`), with `token` and, if
  // `client` names one, that client certificate ("client" or "other_client").
  std::unique_ptr<TimbreClient> TlsClient(const std::string& token = "",
                                          const std::string& client = "",
                                          const std::string& ca = "ca") const {
    TimbreClient::Options options = timbre::testing::LocalClientOptions(server_->port());
    options.tls_ca_file = Cert(ca + ".pem");
    options.token = token;
    options.timeout = absl::Seconds(10);
    if (!client.empty()) {
      options.tls_cert_file = Cert(client + ".pem");
      options.tls_key_file = Cert(client + ".key");
    }
    return timbre::testing::MakeClient(options);
  }

  std::unique_ptr<TimbreClient> PlainClient() const {
    TimbreClient::Options options = timbre::testing::LocalClientOptions(server_->port());
    options.timeout = absl::Seconds(10);
    return timbre::testing::MakeClient(options);
  }

  // Calls `method` (by default the admin method BuildIndex, with an empty request) through
  // `client`'s channel and credentials.
  static absl::Status CallMethod(const TimbreClient& client, const char* method = kAdminMethod) {
    grpc::TemplatedGenericStub<v1::ListSpeakersRequest, v1::ListSpeakersResponse> stub(
        client.channel());
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ListSpeakersRequest request;
    v1::ListSpeakersResponse response;
    absl::Notification done;
    grpc::Status status;
    stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                   [&](grpc::Status s) {
                     status = std::move(s);
                     done.Notify();
                   });
    done.WaitForNotification();
    return FromGrpcStatus(status);
  }

  ScratchDir live_;
  ScratchDir repo_;
  std::unique_ptr<TimbreServer> server_;
};

TEST_F(ServerSecurityTest, PlainTextWarnsThatTheServerIsUnauthenticated) {
  auto security = MakeServerSecurity({});
  ASSERT_THAT(security, IsOk());
  EXPECT_THAT(security->warnings, Contains(HasSubstr("plain text")));
  EXPECT_THAT(security->warnings, Contains(AllOf(HasSubstr("the server is unauthenticated"),
                                                 HasSubstr("can call every method"))));
}

TEST_F(ServerSecurityTest, TlsAndTokensLeaveNothingToWarnAbout) {
  SecurityOptions options = Tls();
  options.token_file = Cert("user.tokens");
  options.admin_token_file = Cert("admin.tokens");
  auto security = MakeServerSecurity(options);
  ASSERT_THAT(security, IsOk());
  EXPECT_THAT(security->warnings, IsEmpty());
}

TEST_F(ServerSecurityTest, MutualTlsWithoutTokensWarnsThatEveryClientIsAdmin) {
  SecurityOptions options = Tls();
  options.tls_client_ca_file = Cert("ca.pem");
  auto security = MakeServerSecurity(options);
  ASSERT_THAT(security, IsOk());
  EXPECT_THAT(security->warnings,
              ElementsAre(AllOf(HasSubstr("no bearer tokens"), HasSubstr("--tls_client_ca"))));
}

TEST_F(ServerSecurityTest, TokenFileReadableByEveryoneIsWarnedAbout) {
  WriteFile(Cert("open.tokens"), absl::StrCat(kUserToken, "\n"));
  chmod(Cert("open.tokens").c_str(), 0644);
  SecurityOptions options = Tls();
  options.token_file = Cert("open.tokens");
  auto security = MakeServerSecurity(options);
  ASSERT_THAT(security, IsOk());
  EXPECT_THAT(security->warnings,
              ElementsAre(AllOf(HasSubstr("--token_file"), HasSubstr("mode 0644"),
                                HasSubstr("chmod 600"))));
}

TEST_F(ServerSecurityTest, IncompleteCombinationsNameTheFlags) {
  SecurityOptions no_key = Tls();
  no_key.tls_key_file.clear();
  EXPECT_THAT(MakeServerSecurity(no_key),
              StatusIs(Code::kInvalidArgument, HasSubstr("--tls_cert and --tls_key go together")));
  SecurityOptions mtls_without_tls;
  mtls_without_tls.tls_client_ca_file = Cert("ca.pem");
  EXPECT_THAT(MakeServerSecurity(mtls_without_tls),
              StatusIs(Code::kInvalidArgument, HasSubstr("--tls_client_ca needs TLS")));
  SecurityOptions tokens_without_tls;
  tokens_without_tls.admin_token_file = Cert("admin.tokens");
  EXPECT_THAT(
      MakeServerSecurity(tokens_without_tls),
      StatusIs(Code::kInvalidArgument, AllOf(HasSubstr("need TLS"), HasSubstr("plain text"))));
  SecurityOptions negative_interval = Tls();
  negative_interval.reload_interval = absl::Seconds(-1);
  EXPECT_THAT(MakeServerSecurity(negative_interval),
              StatusIs(Code::kInvalidArgument,
                       AllOf(HasSubstr("--credentials_reload_interval is -1s"),
                             HasSubstr("0 = never"))));
}

TEST_F(ServerSecurityTest, BadFilesAreRefusedNamingTheFile) {
  WriteFile(Cert("empty.tokens"), "# no token yet\n");
  struct Case {
    std::string SecurityOptions::*field;
    std::string file;
    Code code;
    std::vector<std::string> message;
  };
  const std::vector<Case> cases = {
      {&SecurityOptions::tls_cert_file, "nothing.pem", Code::kNotFound,
       {"--tls_cert", "cannot read", "nothing.pem"}},
      {&SecurityOptions::tls_cert_file, "user.tokens", Code::kInvalidArgument,
       {"--tls_cert", "holds no PEM certificate"}},
      {&SecurityOptions::tls_key_file, "client.key", Code::kInvalidArgument,
       {"client.key", "does not belong", "server.pem"}},
      {&SecurityOptions::tls_key_file, "server.pem", Code::kInvalidArgument,
       {"--tls_key", "no unencrypted PEM private key"}},
      {&SecurityOptions::tls_client_ca_file, "server.key", Code::kInvalidArgument,
       {"--tls_client_ca", "holds no PEM certificate"}},
      {&SecurityOptions::token_file, "empty.tokens", Code::kInvalidArgument,
       {"empty.tokens", "holds no token"}},
  };
  for (const Case& bad : cases) {
    SecurityOptions options = Tls();
    options.*bad.field = Cert(bad.file);
    absl::StatusOr<ServerSecurity> security = MakeServerSecurity(options);
    EXPECT_EQ(security.status().code(), bad.code) << bad.file << ": " << security.status();
    for (const std::string& part : bad.message) {
      EXPECT_THAT(security.status().message(), HasSubstr(part)) << bad.file;
    }
  }
}

TEST_F(ServerSecurityTest, TlsServesVerifyingClientsAndRefusesPlainText) {
  Start(Tls());
  auto client = TlsClient();
  ASSERT_NE(client, nullptr);
  EXPECT_THAT(client->ListSpeakers(), IsOk());
  const timbre::testing::FixtureQueries queries = timbre::testing::ReadFixtureQueries();
  EXPECT_THAT(client->Blend(timbre::testing::FixtureBlendRequest(queries, 16)), IsOk());
  EXPECT_THAT(PlainClient()->ListSpeakers(), StatusIs(Code::kUnavailable, ::testing::_));
  // A client that trusts another CA does not accept the server's certificate.
  TimbreClient::Options distrusting = timbre::testing::LocalClientOptions(server_->port());
  distrusting.tls_ca_file = Cert("other_ca.pem");
  distrusting.timeout = absl::Seconds(10);
  EXPECT_THAT(timbre::testing::MakeClient(distrusting)->ListSpeakers(),
              StatusIs(Code::kUnavailable, ::testing::_));
}

TEST_F(ServerSecurityTest, MutualTlsNeedsAClientCertificateFromTheCa) {
  SecurityOptions options = Tls();
  options.tls_client_ca_file = Cert("ca.pem");
  Start(options);
  EXPECT_THAT(TlsClient("", "client")->ListSpeakers(), IsOk());
  EXPECT_THAT(TlsClient()->ListSpeakers(), StatusIs(Code::kUnavailable, ::testing::_));
  EXPECT_THAT(TlsClient("", "other_client")->ListSpeakers(),
              StatusIs(Code::kUnavailable, ::testing::_));
}

TEST_F(ServerSecurityTest, TokensOnUserAndAdminMethods) {
  SecurityOptions options = Tls();
  options.token_file = Cert("user.tokens");
  options.admin_token_file = Cert("admin.tokens");
  Start(options);
  auto none = TlsClient();
  auto wrong = TlsClient("wrong-token-0123456789abcdef");
  auto user = TlsClient(kUserToken);
  auto admin = TlsClient(kAdminToken);

  EXPECT_THAT(none->ListSpeakers(),
              StatusIs(Code::kUnauthenticated, HasSubstr("missing bearer token")));
  EXPECT_THAT(wrong->ListSpeakers(), StatusIs(Code::kUnauthenticated, HasSubstr("not valid")));
  EXPECT_THAT(user->ListSpeakers(), IsOk());
  EXPECT_THAT(admin->ListSpeakers(), IsOk());

  EXPECT_THAT(CallMethod(*none), StatusIs(Code::kUnauthenticated, ::testing::_));
  EXPECT_THAT(CallMethod(*wrong), StatusIs(Code::kUnauthenticated, ::testing::_));
  EXPECT_THAT(CallMethod(*user),
              StatusIs(Code::kPermissionDenied,
                       AllOf(HasSubstr(kAdminMethod), HasSubstr("needs the admin token"))));
  // Let through to BuildIndex, which finds the request empty.
  EXPECT_THAT(CallMethod(*admin), StatusIs(Code::kInvalidArgument, ::testing::_));
  EXPECT_THAT(user->LoadSpeaker("rvc", false), StatusIs(Code::kPermissionDenied, ::testing::_));
  EXPECT_THAT(user->UnloadSpeaker("rvc"), StatusIs(Code::kPermissionDenied, ::testing::_));
  EXPECT_THAT(admin->UnloadSpeaker("rvc"), IsOk());
  EXPECT_THAT(admin->LoadSpeaker("rvc", false), IsOk());

  // A user's real-time stream works; health stays open to probes without a token.
  auto session = user->OpenSession("rvc", v1::RetrievalOptions());
  const timbre::testing::FixtureQueries queries = timbre::testing::ReadFixtureQueries();
  EXPECT_THAT(session->Send(timbre::testing::FixtureBlendRequest(queries, 16).frames()), IsOk());
  EXPECT_THAT(session->Close(), IsOk());
  auto stranger = none->OpenSession("rvc", v1::RetrievalOptions());
  EXPECT_THAT(stranger->Send(timbre::testing::FixtureBlendRequest(queries, 16).frames()),
              StatusIs(Code::kUnauthenticated, ::testing::_));
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = timbre::testing::ReadFile(Cert("ca.pem"));
  EXPECT_THAT(CheckHealth(server_->port(), "", grpc::SslCredentials(ssl)),
              IsOkAndHolds(grpc::health::v1::HealthCheckResponse::SERVING));
}

TEST_F(ServerSecurityTest, RotatedCertificateServesNewConnectionsWithoutARestart) {
  Start(LiveTls());
  auto connected = TlsClient();
  ASSERT_THAT(connected->ListSpeakers(), IsOk());

  CopyCert("other_server.pem", live_.Join("cert.pem"));
  CopyCert("other_server.key", live_.Join("key.pem"));
  EXPECT_TRUE(WaitFor([&] { return TlsClient("", "", "other_ca")->ListSpeakers().ok(); }));
  EXPECT_THAT(TlsClient()->ListSpeakers(), StatusIs(Code::kUnavailable, ::testing::_));
  // The connection made before the rotation goes on serving.
  EXPECT_THAT(connected->ListSpeakers(), IsOk());
}

TEST_F(ServerSecurityTest, RotatedClientCaAppliesToNewConnections) {
  SecurityOptions options = LiveTls();
  CopyCert("ca.pem", live_.Join("client_ca.pem"));
  options.tls_client_ca_file = live_.Join("client_ca.pem");
  Start(options);
  EXPECT_THAT(TlsClient("", "client")->ListSpeakers(), IsOk());

  CopyCert("other_ca.pem", live_.Join("client_ca.pem"));
  EXPECT_TRUE(WaitFor([&] { return TlsClient("", "other_client")->ListSpeakers().ok(); }));
  EXPECT_THAT(TlsClient("", "client")->ListSpeakers(), StatusIs(Code::kUnavailable, ::testing::_));
}

TEST_F(ServerSecurityTest, RotatedTokensApplyToTheNextCall) {
  SecurityOptions options = LiveTls();
  CopyCert("user.tokens", live_.Join("user.tokens"));
  CopyCert("admin.tokens", live_.Join("admin.tokens"));
  options.token_file = live_.Join("user.tokens");
  options.admin_token_file = live_.Join("admin.tokens");
  Start(options);
  auto old_user = TlsClient(kUserToken);
  ASSERT_THAT(old_user->ListSpeakers(), IsOk());

  WriteFile(live_.Join("user.tokens"), absl::StrCat("# rotated\n", kNewUserToken, "\n"));
  auto new_user = TlsClient(kNewUserToken);
  EXPECT_TRUE(WaitFor([&] { return new_user->ListSpeakers().ok(); }));
  // The removed token is refused, on the connection it used before too.
  EXPECT_THAT(old_user->ListSpeakers(), StatusIs(Code::kUnauthenticated, HasSubstr("not valid")));
  EXPECT_THAT(TlsClient(kAdminToken)->ListSpeakers(), IsOk());
}

TEST_F(ServerSecurityTest, ABrokenRotationIsCountedAsAFailedReloadAndChangesNothing) {
  Start(LiveTls());
  const auto failed_reloads = [this] {
    return timbre::testing::MetricValue(
        timbre::testing::ScrapeMetrics(server_->metrics_port()),
        "timbre_credential_reloads_total{credentials=\"tls\",result=\"failed\"}");
  };
  EXPECT_EQ(failed_reloads(), 0);
  // Half of a rotation: the new certificate with the old key.
  CopyCert("other_server.pem", live_.Join("cert.pem"));
  EXPECT_TRUE(WaitFor([&] { return failed_reloads() >= 1; }));
  EXPECT_THAT(TlsClient()->ListSpeakers(), IsOk());
}

TEST_F(ServerSecurityTest, ClientRefusesATokenWithoutTls) {
  TimbreClient::Options options;
  options.target = "127.0.0.1:1";
  options.token = kUserToken;
  EXPECT_THAT(TimbreClient::Create(options),
              StatusIs(Code::kInvalidArgument, HasSubstr("needs TLS")));
  options.token.clear();
  options.tls_cert_file = Cert("client.pem");
  EXPECT_THAT(TimbreClient::Create(options),
              StatusIs(Code::kInvalidArgument, HasSubstr("go together")));
  options.tls_key_file = Cert("nothing.key");
  EXPECT_THAT(TimbreClient::Create(options),
              StatusIs(Code::kNotFound, AllOf(HasSubstr("--tls_key"), HasSubstr("nothing.key"))));
}

TEST_F(ServerSecurityTest, RefusedTokensAreCountedByReason) {
  SecurityOptions options = Tls();
  options.token_file = Cert("user.tokens");
  options.admin_token_file = Cert("admin.tokens");
  Start(options);
  EXPECT_THAT(TlsClient()->ListSpeakers(), StatusIs(Code::kUnauthenticated, ::testing::_));
  EXPECT_THAT(TlsClient(kUserToken)->LoadSpeaker("rvc", false),
              StatusIs(Code::kPermissionDenied, ::testing::_));
  // A method the server does not have: refused, but it names no series.
  EXPECT_THAT(CallMethod(*TlsClient(kUserToken), "/timbre.v1.IndexBuilder/Build"),
              StatusIs(Code::kPermissionDenied, ::testing::_));
  // The check counts a refusal before it answers.
  const std::string metrics = timbre::testing::ScrapeMetrics(server_->metrics_port());
  EXPECT_EQ(timbre::testing::MetricValue(
                metrics, "timbre_rejected_calls_total{reason=\"permission_denied\"}"),
            2);
  EXPECT_EQ(timbre::testing::MetricValue(
                metrics, "timbre_rejected_calls_total{reason=\"unauthenticated\"}"),
            1);
  // And those of the server's methods count as calls of them.
  const auto calls = [&metrics](const std::string& code, const std::string& method) {
    const std::string name =
        absl::StrCat("timbre_rpc_calls_total{code=\"", code, "\",method=\"", method, "\"}");
    return timbre::testing::MetricValue(metrics, name);
  };
  EXPECT_EQ(calls("UNAUTHENTICATED", "ListSpeakers"), 1);
  EXPECT_EQ(calls("PERMISSION_DENIED", "LoadSpeaker"), 1);
  EXPECT_THAT(metrics, Not(HasSubstr("method=\"Build\"")));
}

}  // namespace
}  // namespace timbre
