#include "server/io/json_proto_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include "tests/support/test_support.h"
#include "timbre/v1/version_metadata.pb.h"

namespace timbre {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::ReadFile;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;
using ::timbre::testing::WriteFile;

TEST(JsonProtoFileTest, RoundTripsWithProtoFieldNames) {
  ScratchDir dir;
  timbre::v1::VersionMetadata written;
  written.set_index_file("index.faiss");
  written.set_num_vectors(12);
  written.set_comment("first");
  ASSERT_THAT(WriteJsonProtoFile(dir.Join("m.json"), written), IsOk());
  EXPECT_THAT(ReadFile(dir.Join("m.json")), HasSubstr("\"index_file\": \"index.faiss\""));
  timbre::v1::VersionMetadata read;
  ASSERT_THAT(ReadJsonProtoFile(dir.Join("m.json"), "metadata", &read), IsOk());
  EXPECT_EQ(read.SerializeAsString(), written.SerializeAsString());
}

TEST(JsonProtoFileTest, IgnoresUnknownFields) {
  ScratchDir dir;
  WriteFile(dir.Join("m.json"), R"({"dim": 768, "added_later": {"x": 1}})");
  timbre::v1::VersionMetadata read;
  ASSERT_THAT(ReadJsonProtoFile(dir.Join("m.json"), "metadata", &read), IsOk());
  EXPECT_EQ(read.dim(), 768u);
}

TEST(JsonProtoFileTest, ErrorsNameTheFile) {
  ScratchDir dir;
  timbre::v1::VersionMetadata read;
  EXPECT_THAT(ReadJsonProtoFile(dir.Join("missing.json"), "metadata", &read),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("cannot read"), HasSubstr("missing.json"))));
  WriteFile(dir.Join("bad.json"), "{ not json");
  EXPECT_THAT(ReadJsonProtoFile(dir.Join("bad.json"), "metadata", &read),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("bad.json"), HasSubstr("is not valid metadata"))));
  EXPECT_THAT(WriteJsonProtoFile(dir.Join("missing/m.json"), read),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing/m.json")));
}

TEST(JsonProtoFileTest, WritingReplacesTheFileWhole) {
  ScratchDir dir;
  WriteFile(dir.Join("m.json"), std::string(1000, ' ') + "{ not json");
  timbre::v1::VersionMetadata written;
  written.set_dim(256);
  ASSERT_THAT(WriteJsonProtoFile(dir.Join("m.json"), written), IsOk());
  timbre::v1::VersionMetadata read;
  ASSERT_THAT(ReadJsonProtoFile(dir.Join("m.json"), "metadata", &read), IsOk());
  EXPECT_EQ(read.dim(), 256u);
}

TEST(JsonProtoFileTest, ReadsCamelCaseFieldNamesToo) {
  // protobuf's JSON mapping accepts both spellings; files written before timbre used proto
  // field names everywhere hold the camelCase ones.
  ScratchDir dir;
  WriteFile(dir.Join("m.json"), R"({"indexFile": "x.faiss", "numVectors": "12"})");
  timbre::v1::VersionMetadata read;
  ASSERT_THAT(ReadJsonProtoFile(dir.Join("m.json"), "metadata", &read), IsOk());
  EXPECT_EQ(read.index_file(), "x.faiss");
  EXPECT_EQ(read.num_vectors(), 12u);
}

TEST(JsonProtoFileTest, FifoOrOversizedFileIsRefusedWithoutWaiting) {
  // Before, a FIFO put where metadata.json belongs blocked the repository scan for ever.
  ScratchDir dir;
  ASSERT_EQ(mkfifo(dir.Join("fifo.json").c_str(), 0600), 0);
  timbre::v1::VersionMetadata read;
  EXPECT_THAT(ReadJsonProtoFile(dir.Join("fifo.json"), "metadata", &read),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("fifo.json"), HasSubstr("not a regular file"))));
  EXPECT_THAT(ReadJsonProtoFile("/dev/zero", "metadata", &read),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not a regular file")));
  WriteFile(dir.Join("huge.json"), "");
  ASSERT_EQ(truncate(dir.Join("huge.json").c_str(), kMaxJsonProtoFileBytes + 1), 0);
  EXPECT_THAT(ReadJsonProtoFile(dir.Join("huge.json"), "metadata", &read),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("more than the")));
}

}  // namespace
}  // namespace timbre
