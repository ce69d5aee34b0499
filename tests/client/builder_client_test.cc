// BuilderClient's checks of what it reads before any call: the files of an upload are read
// through InputFile, so a FIFO or a missing file fails at once, naming it, without a server.
#include "timbre/builder_client.h"

#include <sys/stat.h>

#include <memory>
#include <string>

#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;

class BuilderClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TimbreClient::Options options;
    options.target = "127.0.0.1:1";  // never called: every case fails before connecting
    absl::StatusOr<std::unique_ptr<BuilderClient>> builder = BuilderClient::Create(options);
    ASSERT_THAT(builder, IsOk());
    builder_ = *std::move(builder);
  }

  absl::Status Upload(const std::string& path, int64_t chunk_bytes = 1 << 20) {
    return builder_->Upload(path, chunk_bytes, [](int64_t, int64_t) {}).status();
  }

  ScratchDir dir_;
  std::unique_ptr<BuilderClient> builder_;
};

TEST_F(BuilderClientTest, AFifoIsRefusedWithoutWaitingForAWriter) {
  ASSERT_EQ(mkfifo(dir_.Join("a.npy").c_str(), 0600), 0);
  EXPECT_THAT(Upload(dir_.Join("a.npy")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("a.npy"), HasSubstr("is not a regular file"))));
}

TEST_F(BuilderClientTest, AMissingPathIsNotFound) {
  EXPECT_THAT(Upload(dir_.Join("missing")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
}

TEST_F(BuilderClientTest, TheChunkSizeMustBePositive) {
  ::timbre::testing::WriteFile(dir_.Join("a.npy"), "x");
  EXPECT_THAT(Upload(dir_.Join("a.npy"), 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("chunk size")));
}

}  // namespace
}  // namespace timbre
