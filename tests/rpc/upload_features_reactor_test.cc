// UploadFeaturesReactor through gRPC: a real server on a loopback port and raw UploadFeatures
// streams. A good upload answers its feature set; every bad one (wrong digest, bad file, mixed
// dims, unsafe name, nothing sent, undecodable message, stalled or cancelled client) is refused
// and stores nothing.
#include "server/rpc/upload_features_reactor.h"

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "server/io/sha256.h"
#include "tests/support/feature_set_test_support.h"
#include "tests/support/server_test_support.h"
#include "timbre/builder_client.h"

namespace timbre {
namespace {

using ::testing::HasSubstr;
using ::timbre::testing::Float32Npy;
using ::timbre::testing::IsOk;
using ::timbre::testing::NamedFile;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;

namespace fs = std::filesystem;

// The header message announcing `file` with its true size and the digest of `digested`.
v1::UploadFeaturesRequest FileHeader(const NamedFile& file, const std::string& digested) {
  v1::UploadFeaturesRequest header;
  header.mutable_file()->set_name(file.name);
  header.mutable_file()->set_size_bytes(file.bytes.size());
  Sha256 digest;
  digest.Update(digested);
  header.mutable_file()->set_sha256(digest.HexDigest());
  return header;
}

v1::UploadFeaturesRequest Chunk(std::string bytes) {
  v1::UploadFeaturesRequest chunk;
  chunk.set_chunk(std::move(bytes));
  return chunk;
}

class UploadFeaturesReactorTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(testing::LocalServerOptions(Repo())); }

  std::string Repo() {
    fs::create_directories(dir_.Join("repo"));
    return dir_.Join("repo");
  }
  void Start(const TimbreServer::Options& options) {
    server_ = testing::StartServer(options);
    ASSERT_NE(server_, nullptr);
    const TimbreClient::Options client_options = testing::LocalClientOptions(server_->port());
    auto builder = BuilderClient::Create(client_options);
    ASSERT_THAT(builder, IsOk());
    builder_ = *std::move(builder);
    auto channel = MakeChannel(client_options);
    ASSERT_THAT(channel, IsOk());
    stub_ = v1::IndexBuilder::NewStub(*channel);
    channel_ = *std::move(channel);
  }

  // Uploads `files` (header, then the file in chunks of `chunk` bytes); returns the status.
  absl::Status Upload(const std::vector<NamedFile>& files, bool wrong_digest = false,
                      size_t chunk = 1 << 16, v1::FeatureSet* set = nullptr) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::FeatureSet response;
    auto writer = stub_->UploadFeatures(&context, &response);
    for (const NamedFile& file : files) {
      writer->Write(FileHeader(file, wrong_digest ? "something else" : file.bytes));
      for (size_t at = 0; at < file.bytes.size(); at += chunk) {
        writer->Write(Chunk(file.bytes.substr(at, chunk)));
      }
    }
    writer->WritesDone();
    const absl::Status status = FromGrpcStatus(writer->Finish());
    if (set != nullptr) *set = response;
    return status;
  }

  // No feature set is listed and nothing (staging included) is left in the work directory. A
  // cancelled client hears CANCELLED before the server's file worker has removed the staging
  // files, so that part is awaited (bounded).
  void ExpectNothingStored() {
    auto sets = builder_->ListFeatureSets();
    ASSERT_THAT(sets, IsOk());
    EXPECT_EQ(sets->feature_sets_size(), 0);
    const std::string feature_sets = dir_.Join("repo/.timbre/feature-sets");
    EXPECT_TRUE(::timbre::testing::WaitFor(
        [&] { return !fs::exists(feature_sets) || fs::is_empty(feature_sets); }))
        << "left in " << feature_sets;
  }

  ScratchDir dir_;
  std::unique_ptr<TimbreServer> server_;
  std::unique_ptr<BuilderClient> builder_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::IndexBuilder::Stub> stub_;
};

TEST_F(UploadFeaturesReactorTest, FilesInSmallChunksBecomeOneFeatureSet) {
  v1::FeatureSet set;
  ASSERT_THAT(Upload({{"b.npy", Float32Npy(100, 256, 1.0f)}, {"a.npy", Float32Npy(50, 256, 2.0f)}},
                     false, /*chunk=*/1000, &set),
              IsOk());
  EXPECT_EQ(set.rows(), 150u);
  EXPECT_EQ(set.dim(), 256u);
  ASSERT_EQ(set.files_size(), 2);
  EXPECT_EQ(set.files(0).name(), "a.npy");  // sorted as RVC reads them
  EXPECT_EQ(set.files(1).rows(), 100u);
  auto sets = builder_->ListFeatureSets();
  ASSERT_THAT(sets, IsOk());
  ASSERT_EQ(sets->feature_sets_size(), 1);
  EXPECT_EQ(sets->feature_sets(0).id(), set.id());
}

TEST_F(UploadFeaturesReactorTest, BadUploadsAreRefusedAndLeaveNothing) {
  const std::string good = Float32Npy(100, 256, 0.0f);
  EXPECT_THAT(Upload({{"a.npy", good}}, /*wrong_digest=*/true),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("SHA-256")));
  EXPECT_THAT(Upload({{"a.npy", "not an npy file at all"}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("a.npy")));
  EXPECT_THAT(Upload({{"a.npy", good}, {"b.npy", Float32Npy(100, 768, 0.0f)}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("b.npy")));
  EXPECT_THAT(Upload({{"../evil.npy", good}}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("evil")));
  EXPECT_THAT(Upload({}), StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  ExpectNothingStored();
}

TEST_F(UploadFeaturesReactorTest, MessageThatIsNoProtobufIsRefusedAndStoresNothing) {
  // A message that does not decode must not read as the end of the stream (which would verify
  // and publish what had come so far).
  const NamedFile file{"a.npy", Float32Npy(100, 256, 0.0f)};
  const grpc::Status status = testing::StreamRawMessages(
      channel_, "/timbre.v1.IndexBuilder/UploadFeatures",
      {FileHeader(file, file.bytes).SerializeAsString(), Chunk(file.bytes).SerializeAsString(),
       testing::kNotAProtobuf});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("message 3 of the upload: the message is not a valid "
                        "timbre.v1.UploadFeaturesRequest"));
  ExpectNothingStored();
}

TEST_F(UploadFeaturesReactorTest, CancelledUploadStoresNothingEvenBetweenFiles) {
  const NamedFile file{"a.npy", Float32Npy(100, 256, 0.0f)};
  grpc::ClientContext context;
  v1::FeatureSet response;
  auto writer = stub_->UploadFeatures(&context, &response);
  ASSERT_TRUE(writer->Write(FileHeader(file, file.bytes)));
  ASSERT_TRUE(writer->Write(Chunk(file.bytes)));  // a whole, valid file; then the client goes away
  context.TryCancel();
  EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::CANCELLED);
  ExpectNothingStored();
}

TEST_F(UploadFeaturesReactorTest, StalledUploadIsEndedAndStoresNothing) {
  // A client that sends a header and then nothing (or one byte a second of a chunk, which gRPC
  // delivers as no message at all) is ended after --upload_stall_timeout.
  server_.reset();
  TimbreServer::Options options = testing::LocalServerOptions(Repo());
  options.upload_stall_timeout = absl::Milliseconds(300);
  Start(options);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::FeatureSet response;
  auto writer = stub_->UploadFeatures(&context, &response);
  v1::UploadFeaturesRequest header;
  header.mutable_file()->set_name("a.npy");
  header.mutable_file()->set_size_bytes(1000);
  header.mutable_file()->set_sha256(std::string(64, '0'));
  ASSERT_TRUE(writer->Write(header));
  const grpc::Status status = writer->Finish();  // waits for the server to end the call
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_THAT(status.error_message(), HasSubstr("no complete message for 300ms"));
  ExpectNothingStored();
}

}  // namespace
}  // namespace timbre
