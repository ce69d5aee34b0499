#include "server/status/rejection.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::timbre::testing::StatusIs;

TEST(RejectionTest, MarkedStatusKeepsItsCodeAndMessageAndTellsItsReason) {
  for (RejectionReason reason : kRejectionReasons) {
    const absl::Status status = Rejected(absl::ResourceExhaustedError("queue full"), reason);
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted, "queue full"));
    EXPECT_EQ(RejectionReasonOf(status), reason) << RejectionReasonName(reason);
  }
}

TEST(RejectionTest, UnmarkedStatusIsNoRejection) {
  EXPECT_EQ(RejectionReasonOf(absl::ResourceExhaustedError("disk full")), std::nullopt);
  EXPECT_EQ(RejectionReasonOf(absl::InvalidArgumentError("bad")), std::nullopt);
  EXPECT_EQ(RejectionReasonOf(absl::OkStatus()), std::nullopt);
  // OK cannot carry a mark.
  EXPECT_EQ(RejectionReasonOf(Rejected(absl::OkStatus(), RejectionReason::kOverloaded)),
            std::nullopt);
}

TEST(RejectionTest, NamesAreShortAndDistinct) {
  EXPECT_EQ(RejectionReasonName(RejectionReason::kOverloaded), "overloaded");
  EXPECT_EQ(RejectionReasonName(RejectionReason::kDeadline), "deadline");
  EXPECT_EQ(RejectionReasonName(RejectionReason::kTooLarge), "too_large");
}

TEST(RejectionTest, PrefixedStatusKeepsCodeAndMark) {
  const absl::Status prefixed = WithMessagePrefix(
      "speaker 'big': ", Rejected(absl::ResourceExhaustedError("needs 9 bytes"),
                                  RejectionReason::kTooLarge));
  EXPECT_THAT(prefixed,
              StatusIs(absl::StatusCode::kResourceExhausted, "speaker 'big': needs 9 bytes"));
  EXPECT_EQ(RejectionReasonOf(prefixed), RejectionReason::kTooLarge);
  EXPECT_THAT(WithMessagePrefix("block 3: ", absl::NotFoundError("no speaker")),
              StatusIs(absl::StatusCode::kNotFound, "block 3: no speaker"));
  EXPECT_TRUE(WithMessagePrefix("block 3: ", absl::OkStatus()).ok());
}

}  // namespace
}  // namespace timbre
