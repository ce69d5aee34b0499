// Helpers shared by the tests that run a real timbre server on a loopback port: the RVC fixture,
// a server serving it, clients and the health service.
#ifndef TIMBRE_TESTS_SUPPORT_SERVER_TEST_SUPPORT_H_
#define TIMBRE_TESTS_SUPPORT_SERVER_TEST_SUPPORT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "server/timbre_server.h"
#include "tests/support/test_support.h"
#include "timbre/timbre_client.h"

namespace timbre::testing {

// An RVC-written IVF25,Flat index of 1,000 vectors of dim 256 (tests/data).
inline constexpr char kFixtureIndex[] = "added_IVF25_Flat_nprobe_1_fixture_v1.index";

// A float32 .npy matrix from tests/data, row-major, with its shape.
std::vector<float> ReadFloats(const std::string& name, int64_t* rows, int* dim);

// Packed little-endian float32.
std::string Pack(const std::vector<float>& values);

// The fixture's query frames [rows, 256].
struct FixtureQueries {
  std::vector<float> values;
  int64_t rows = 0;
  int dim = 0;
};
FixtureQueries ReadFixtureQueries();

// Options for a server of `repo` on a free loopback port without metrics or rescans.
TimbreServer::Options LocalServerOptions(const std::string& repo);

// Copies the fixture index into `repo` as speaker "rvc" and returns LocalServerOptions for it.
TimbreServer::Options FixtureServerOptions(const ScratchDir& repo);

// Starts a server with `options` and waits until it serves (its first scan has finished); on
// failure records it in the test and returns nullptr.
std::unique_ptr<TimbreServer> StartServer(const TimbreServer::Options& options);

// Client options for the server on `port` at 127.0.0.1.
TimbreClient::Options LocalClientOptions(int port);
std::unique_ptr<TimbreClient> MakeClient(const TimbreClient::Options& options);

// Asks the health service of the server on `port` about `service`, over `credentials`.
absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> CheckHealth(
    int port, const std::string& service,
    std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials());

// The body of GET /metrics from the Prometheus endpoint on `port`, over a plain loopback socket
// ("" if it cannot connect).
std::string ScrapeMetrics(int port);

// The value of the sample `name` (with its labels, as exposed) in a /metrics text; 0 if absent.
double MetricValue(const std::string& metrics, const std::string& name);

// Calls `method` (its full path) on `channel` with `request` sent as they are, undecoded: as a
// unary call, or as the request of a server-streaming call whose answers are read and dropped.
// Returns the call's status.
grpc::Status CallWithRawRequest(const std::shared_ptr<grpc::Channel>& channel,
                                const std::string& method, const std::string& request,
                                bool server_streaming = false);

// Opens a stream to `method` (client- or bidi-streaming) on `channel`, writes `messages` as they
// are, closes its side and returns the call's status (answers are read and dropped).
grpc::Status StreamRawMessages(const std::shared_ptr<grpc::Channel>& channel,
                               const std::string& method,
                               const std::vector<std::string>& messages);

// Bytes that are no valid protobuf message of any type: a length-delimited field 1 that claims
// 100 bytes and has 3.
inline constexpr char kNotAProtobuf[] = "\x0a\x64" "abc";

// A Blend request of `rows` frames for speaker "rvc", cycling through the fixture's queries.
v1::BlendRequest FixtureBlendRequest(const FixtureQueries& queries, int64_t rows);

// Bearer tokens and method names for the tests of the token checks: a user token, its
// replacement in rotations, an admin token (all long enough for ParseTokens).
inline constexpr char kUserToken[] = "user-token-0123456789abcdef";
inline constexpr char kNewUserToken[] = "new-user-token-0123456789abcdef";
inline constexpr char kAdminToken[] = "admin-token-0123456789abcdef";
// A method that needs a user token, and one that needs the admin token.
inline constexpr char kUserMethod[] = "/timbre.v1.Timbre/Blend";
inline constexpr char kAdminMethod[] = "/timbre.v1.IndexBuilder/BuildIndex";

// A fixture whose tests share the TLS files of tests/data/make_test_certs.sh (test CAs, server
// and client certificates), made with the openssl tool once for each test suite.
class TestWithCertificates : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  // The path of the file `name` ("server.pem") in the suite's directory; tests may add files.
  static std::string Cert(const std::string& name);
  // Copies the file `name` of the suite's directory to `path`, replacing what is there.
  static void CopyCert(const std::string& name, const std::string& path);

 private:
  static ScratchDir* certs_;
};

}  // namespace timbre::testing

#endif  // TIMBRE_TESTS_SUPPORT_SERVER_TEST_SUPPORT_H_
