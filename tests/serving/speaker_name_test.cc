#include "server/serving/speaker_name.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::StatusIs;

TEST(ValidateSpeakerNameTest, AcceptsValidNames) {
  for (const std::string& name : std::vector<std::string>{
           "alice", "a", "Bob_2", "voice.v2", "x-y", "0", "9lives", "a..b", "trailing.",
           "trailing-", "_under", "ABCxyz019._-", std::string(kMaxSpeakerNameLength, 'n')}) {
    EXPECT_THAT(ValidateSpeakerName(name), IsOk()) << name;
  }
}

TEST(ValidateSpeakerNameTest, RejectsEmpty) {
  EXPECT_THAT(ValidateSpeakerName(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
}

TEST(ValidateSpeakerNameTest, RejectsLeadingDot) {
  EXPECT_THAT(ValidateSpeakerName(".."),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("start with '.'")));
  EXPECT_THAT(ValidateSpeakerName("."),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("start with '.'")));
  EXPECT_THAT(ValidateSpeakerName(".hidden"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(".hidden"), HasSubstr("start with '.'"))));
}

TEST(ValidateSpeakerNameTest, RejectsLeadingDash) {
  EXPECT_THAT(ValidateSpeakerName("-x"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("-x"), HasSubstr("start with '-'"))));
}

TEST(ValidateSpeakerNameTest, RejectsPathSeparators) {
  EXPECT_THAT(ValidateSpeakerName("a/b"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("character '/'")));
  EXPECT_THAT(ValidateSpeakerName("/etc"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("character '/'")));
  EXPECT_THAT(ValidateSpeakerName("a\\b"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("character '\\\\'")));
  EXPECT_THAT(ValidateSpeakerName("../etc"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'.'")));
}

TEST(ValidateSpeakerNameTest, RejectsTooLong) {
  const std::string name(kMaxSpeakerNameLength + 1, 'n');
  ASSERT_EQ(name.size(), 65u);
  EXPECT_THAT(ValidateSpeakerName(name),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("65 characters"), HasSubstr("64"))));
}

TEST(ValidateSpeakerNameTest, RejectsSpacesAndControlCharacters) {
  EXPECT_THAT(ValidateSpeakerName("a b"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("character ' '")));
  EXPECT_THAT(ValidateSpeakerName(std::string("a\0b", 3)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("character '\\x00'")));
  EXPECT_THAT(ValidateSpeakerName("tab\there"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("character '\\t'")));
  EXPECT_THAT(ValidateSpeakerName("a:b"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("character ':'")));
}

TEST(ValidateSpeakerNameTest, RejectsNonAscii) {
  // "café" in UTF-8: the first byte of "é" is 0xC3, shown escaped.
  EXPECT_THAT(ValidateSpeakerName("caf\xC3\xA9"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("caf\\xc3\\xa9"), HasSubstr("character '\\xc3'"))));
}

}  // namespace
}  // namespace timbre
