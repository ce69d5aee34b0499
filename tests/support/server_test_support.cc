#include "tests/support/server_test_support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "grpcpp/impl/codegen/client_unary_call.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/sync_stream.h"
#include "server/io/frame_codec.h"
#include "server/io/npy_file.h"

namespace timbre::testing {

std::vector<float> ReadFloats(const std::string& name, int64_t* rows, int* dim) {
  absl::StatusOr<NpyArray> array = ReadNpy(DataPath(name));
  EXPECT_TRUE(array.ok()) << array.status();
  if (!array.ok()) return {};
  *rows = array->shape[0];
  *dim = static_cast<int>(array->shape[1]);
  std::vector<float> values(array->data.size() / 4);
  std::memcpy(values.data(), array->data.data(), array->data.size());
  return values;
}

std::string Pack(const std::vector<float>& values) { return EncodeFrames(DType::kFloat32, values); }

FixtureQueries ReadFixtureQueries() {
  FixtureQueries queries;
  queries.values = ReadFloats("rvc_fixture_queries.npy", &queries.rows, &queries.dim);
  return queries;
}

TimbreServer::Options LocalServerOptions(const std::string& repo) {
  TimbreServer::Options options;
  options.repo = repo;
  options.host = "127.0.0.1";
  options.port = 0;
  options.metrics_port = -1;  // the endpoint takes ~2 s to stop
  options.poll_interval = absl::ZeroDuration();
  return options;
}

TimbreServer::Options FixtureServerOptions(const ScratchDir& repo) {
  std::filesystem::create_directories(repo.Join("rvc"));
  std::filesystem::copy_file(DataPath(kFixtureIndex),
                             repo.Join(std::string("rvc/") + kFixtureIndex),
                             std::filesystem::copy_options::overwrite_existing);
  return LocalServerOptions(repo.path());
}

std::unique_ptr<TimbreServer> StartServer(const TimbreServer::Options& options) {
  auto server = TimbreServer::Start(options);
  EXPECT_THAT(server, IsOk());
  if (!server.ok()) return nullptr;
  EXPECT_TRUE((*server)->WaitUntilServing(absl::Seconds(60))) << "the first scan did not finish";
  return *std::move(server);
}

TimbreClient::Options LocalClientOptions(int port) {
  TimbreClient::Options options;
  options.target = absl::StrCat("127.0.0.1:", port);
  return options;
}

std::unique_ptr<TimbreClient> MakeClient(const TimbreClient::Options& options) {
  auto client = TimbreClient::Create(options);
  EXPECT_THAT(client, IsOk());
  return client.ok() ? *std::move(client) : nullptr;
}

absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> CheckHealth(
    int port, const std::string& service, std::shared_ptr<grpc::ChannelCredentials> credentials) {
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), credentials);
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  absl::Status status = FromGrpcStatus(health->Check(&context, request, &response));
  if (!status.ok()) return status;
  return response.status();
}

std::string ScrapeMetrics(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return "";
  }
  const std::string request = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
  send(fd, request.data(), request.size(), 0);
  std::string response;
  char buffer[4096];
  ssize_t n;
  while ((n = recv(fd, buffer, sizeof(buffer), 0)) > 0) response.append(buffer, n);
  close(fd);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

double MetricValue(const std::string& metrics, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(metrics, '\n')) {
    if (!absl::ConsumePrefix(&line, name) || !absl::ConsumePrefix(&line, " ")) continue;
    double value = 0;
    if (absl::SimpleAtod(line, &value)) return value;
  }
  return 0;
}

v1::BlendRequest FixtureBlendRequest(const FixtureQueries& queries, int64_t rows) {
  std::vector<float> values(static_cast<size_t>(rows) * queries.dim);
  for (size_t i = 0; i < values.size(); ++i) values[i] = queries.values[i % queries.values.size()];
  v1::BlendRequest request;
  request.set_speaker("rvc");
  *request.mutable_frames() = MakeFrames(v1::DTYPE_FLOAT32, static_cast<uint32_t>(rows),
                                         static_cast<uint32_t>(queries.dim), Pack(values));
  return request;
}

ScratchDir* TestWithCertificates::certs_ = nullptr;

void TestWithCertificates::SetUpTestSuite() {
  certs_ = new ScratchDir();
  const std::string command =
      absl::StrCat("bash ", DataPath("make_test_certs.sh"), " ", certs_->path());
  ASSERT_EQ(std::system(command.c_str()), 0)
      << "making the test certificates failed; is the openssl tool installed "
         "(deploy/install-deps.sh)?";
}

void TestWithCertificates::TearDownTestSuite() {
  delete certs_;
  certs_ = nullptr;
}

std::string TestWithCertificates::Cert(const std::string& name) { return certs_->Join(name); }

void TestWithCertificates::CopyCert(const std::string& name, const std::string& path) {
  std::filesystem::copy_file(Cert(name), path, std::filesystem::copy_options::overwrite_existing);
}

namespace {

grpc::ByteBuffer ToByteBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

}  // namespace

grpc::Status CallWithRawRequest(const std::shared_ptr<grpc::Channel>& channel,
                                const std::string& method, const std::string& request,
                                bool server_streaming) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  const grpc::ByteBuffer request_bytes = ToByteBuffer(request);
  grpc::ByteBuffer response;
  if (!server_streaming) {
    return grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
        channel.get(),
        grpc::internal::RpcMethod(method.c_str(), grpc::internal::RpcMethod::NORMAL_RPC),
        &context, request_bytes, &response);
  }
  std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader(
      grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(
          channel.get(),
          grpc::internal::RpcMethod(method.c_str(), grpc::internal::RpcMethod::SERVER_STREAMING),
          &context, request_bytes));
  while (reader->Read(&response)) {
  }
  return reader->Finish();
}

grpc::Status StreamRawMessages(const std::shared_ptr<grpc::Channel>& channel,
                               const std::string& method,
                               const std::vector<std::string>& messages) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> stream(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
          channel.get(),
          grpc::internal::RpcMethod(method.c_str(), grpc::internal::RpcMethod::BIDI_STREAMING),
          &context));
  for (const std::string& message : messages) {
    if (!stream->Write(ToByteBuffer(message))) break;  // the server ended the call
  }
  stream->WritesDone();
  grpc::ByteBuffer response;
  while (stream->Read(&response)) {
  }
  return stream->Finish();
}

}  // namespace timbre::testing
