// ReloadableTlsCredentials behind a bare gRPC server on a loopback port, whose every method
// answers UNIMPLEMENTED: a call that gets UNIMPLEMENTED got through the TLS handshake, one that
// gets UNAVAILABLE did not. The TLS files are made at test time by tests/data/make_test_certs.sh.
#include "server/security/reloadable_tls_credentials.h"

#include <chrono>
#include <memory>
#include <string>

#include "absl/synchronization/notification.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "tests/support/server_test_support.h"

namespace timbre {
namespace {

using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::IsOkAndHolds;
using ::timbre::testing::StatusIs;
using ::timbre::testing::WaitFor;
using Code = grpc::StatusCode;

class ReloadableTlsCredentialsTest : public timbre::testing::TestWithCertificates {
 protected:
  // The files of the server certificate `server` ("server" or "other_server"), with the client
  // CA `client_ca` ("" for none).
  static TlsFiles Files(const std::string& server, const std::string& client_ca = "") {
    SecurityOptions options;
    options.tls_cert_file = Cert(server + ".pem");
    options.tls_key_file = Cert(server + ".key");
    if (!client_ca.empty()) options.tls_client_ca_file = Cert(client_ca + ".pem");
    absl::StatusOr<TlsFiles> files = ReadTlsFiles(options);
    EXPECT_THAT(files, IsOk());
    return files.ok() ? *std::move(files) : TlsFiles();
  }

  // Starts the server with credentials for `files`.
  void Start(const TlsFiles& files) {
    auto tls = ReloadableTlsCredentials::Create(files);
    ASSERT_THAT(tls, IsOk());
    tls_ = *std::move(tls);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", tls_->credentials(), &port_);
    builder.RegisterCallbackGenericService(&unimplemented_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }

  // A channel to the server that trusts the CA `ca` and, if `client` names one, presents that
  // client certificate ("client" or "other_client").
  std::shared_ptr<grpc::Channel> Channel(const std::string& ca,
                                         const std::string& client = "") const {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = timbre::testing::ReadFile(Cert(ca + ".pem"));
    if (!client.empty()) {
      ssl.pem_cert_chain = timbre::testing::ReadFile(Cert(client + ".pem"));
      ssl.pem_private_key = timbre::testing::ReadFile(Cert(client + ".key"));
    }
    return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_), grpc::SslCredentials(ssl));
  }

  // The code of a call through `channel`: UNIMPLEMENTED once connected.
  static Code Call(const std::shared_ptr<grpc::Channel>& channel) {
    grpc::GenericStub stub(channel);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Slice empty("");
    grpc::ByteBuffer request(&empty, 1);
    grpc::ByteBuffer response;
    absl::Notification done;
    grpc::Status status;
    stub.UnaryCall(&context, "/test.Service/Method", grpc::StubOptions(), &request, &response,
                   [&](grpc::Status s) {
                     status = std::move(s);
                     done.Notify();
                   });
    done.WaitForNotification();
    return status.error_code();
  }

  // Whether a new connection trusting `ca` (with client certificate `client`) gets through.
  bool Connects(const std::string& ca, const std::string& client = "") const {
    return Call(Channel(ca, client)) == Code::UNIMPLEMENTED;
  }

  std::unique_ptr<ReloadableTlsCredentials> tls_;
  grpc::CallbackGenericService unimplemented_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(ReloadableTlsCredentialsTest, ServesTheFilesItWasCreatedWith) {
  Start(Files("server"));
  EXPECT_TRUE(Connects("ca"));
  EXPECT_FALSE(Connects("other_ca"));
  EXPECT_THAT(tls_->Replace(Files("server")), IsOkAndHolds(false));
}

TEST_F(ReloadableTlsCredentialsTest, ReplacedFilesReachNewConnectionsAndOpenOnesStay) {
  Start(Files("server"));
  const std::shared_ptr<grpc::Channel> open = Channel("ca");
  ASSERT_EQ(Call(open), Code::UNIMPLEMENTED);

  EXPECT_THAT(tls_->Replace(Files("other_server")), IsOkAndHolds(true));
  EXPECT_TRUE(WaitFor([&] { return Connects("other_ca"); }));
  EXPECT_FALSE(Connects("ca"));
  // The connection made before the replacement still carries calls.
  EXPECT_EQ(Call(open), Code::UNIMPLEMENTED);
}

TEST_F(ReloadableTlsCredentialsTest, MutualTlsClientCaIsReplaced) {
  Start(Files("server", "ca"));
  EXPECT_TRUE(Connects("ca", "client"));
  EXPECT_FALSE(Connects("ca"));
  EXPECT_FALSE(Connects("ca", "other_client"));

  EXPECT_THAT(tls_->Replace(Files("server", "other_ca")), IsOkAndHolds(true));
  EXPECT_TRUE(WaitFor([&] { return Connects("ca", "other_client"); }));
  EXPECT_FALSE(Connects("ca", "client"));
  EXPECT_FALSE(Connects("ca"));
}

TEST_F(ReloadableTlsCredentialsTest, MutualTlsCannotBeSwitchedOnOrOffWhileServing) {
  Start(Files("server"));
  EXPECT_THAT(tls_->Replace(Files("server", "ca")),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("started without --tls_client_ca")));
  auto mutual = ReloadableTlsCredentials::Create(Files("server", "ca"));
  ASSERT_THAT(mutual, IsOk());
  EXPECT_THAT(
      (*mutual)->Replace(Files("server")),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("started with --tls_client_ca")));
  EXPECT_TRUE(Connects("ca"));
}

}  // namespace
}  // namespace timbre
