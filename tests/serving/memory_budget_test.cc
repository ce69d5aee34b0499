#include "server/serving/memory_budget.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/status/rejection.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::timbre::testing::IsOk;
using ::timbre::testing::StatusIs;

std::vector<std::string> VictimsOrDie(const MemoryBudget& budget, int64_t bytes,
                                      absl::string_view last_resort = {}) {
  auto victims = budget.ChooseVictims(bytes, last_resort);
  EXPECT_THAT(victims, IsOk());
  return victims.ok() ? *victims : std::vector<std::string>{"(error)"};
}

TEST(MemoryBudgetTest, UnlimitedFitsEverything) {
  MemoryBudget budget(0);
  budget.Charge("a", int64_t{1} << 40);
  EXPECT_TRUE(budget.unlimited());
  EXPECT_TRUE(budget.Fits(int64_t{1} << 40));
  EXPECT_THAT(VictimsOrDie(budget, int64_t{1} << 50), IsEmpty());
  EXPECT_EQ(budget.used_bytes(), int64_t{1} << 40);
}

TEST(MemoryBudgetTest, ChargesReplaceAndReleaseReturnsThem) {
  MemoryBudget budget(100);
  budget.Charge("a", 30);
  budget.Charge("b", 20);
  budget.Charge("a", 40);
  EXPECT_EQ(budget.used_bytes(), 60);
  EXPECT_EQ(budget.charged_bytes("a"), 40);
  EXPECT_EQ(budget.Release("a"), 40);
  EXPECT_EQ(budget.Release("a"), 0);
  EXPECT_EQ(budget.charged_bytes("a"), 0);
  EXPECT_EQ(budget.used_bytes(), 20);
  budget.Reserve(50);
  EXPECT_EQ(budget.used_bytes(), 70);
  EXPECT_TRUE(budget.Fits(30));
  EXPECT_FALSE(budget.Fits(31));
  budget.Unreserve(50);
  EXPECT_EQ(budget.used_bytes(), 20);
}

TEST(MemoryBudgetTest, VictimsAreLeastRecentlyUsedFirstAndOnlyAsManyAsNeeded) {
  MemoryBudget budget(100);
  budget.Charge("a", 30);
  budget.Charge("b", 30);
  budget.Charge("c", 30);
  EXPECT_THAT(VictimsOrDie(budget, 10), IsEmpty());
  EXPECT_THAT(VictimsOrDie(budget, 11), ElementsAre("a"));
  budget.Touch("a");  // now b is the least recently used
  EXPECT_THAT(VictimsOrDie(budget, 11), ElementsAre("b"));
  EXPECT_THAT(VictimsOrDie(budget, 41), ElementsAre("b", "c"));
  EXPECT_THAT(VictimsOrDie(budget, 100), ElementsAre("b", "c", "a"));
  budget.Touch("unknown");  // no charge, no effect
  EXPECT_EQ(budget.used_bytes(), 90);
}

TEST(MemoryBudgetTest, LastResortIsChosenOnlyWhenTheOthersAreNotEnough) {
  MemoryBudget budget(100);
  budget.Charge("old", 40);
  budget.Charge("b", 30);
  budget.Charge("c", 30);
  EXPECT_THAT(VictimsOrDie(budget, 30, "old"), ElementsAre("b"));
  EXPECT_THAT(VictimsOrDie(budget, 60, "old"), ElementsAre("b", "c"));
  EXPECT_THAT(VictimsOrDie(budget, 61, "old"), ElementsAre("b", "c", "old"));
}

TEST(MemoryBudgetTest, MoreThanTheLimitIsResourceExhaustedNamingSizes) {
  MemoryBudget budget(100);
  budget.Charge("a", 10);
  const absl::Status too_large = budget.ChooseVictims(101).status();
  EXPECT_THAT(too_large,
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("needs 101 bytes"), HasSubstr("budget of 100 bytes"))));
  EXPECT_EQ(RejectionReasonOf(too_large), RejectionReason::kTooLarge);
}

TEST(MemoryBudgetTest, ReservationsCannotBeFreed) {
  MemoryBudget budget(100);
  budget.Charge("a", 20);
  budget.Reserve(70);
  EXPECT_THAT(VictimsOrDie(budget, 30), ElementsAre("a"));
  const absl::Status reserved = budget.ChooseVictims(31).status();
  EXPECT_THAT(reserved, StatusIs(absl::StatusCode::kResourceExhausted,
                                 HasSubstr("70 bytes reserved by loads in progress")));
  // Room the loads in progress hold may come free: a refusal for now, not for ever.
  EXPECT_EQ(RejectionReasonOf(reserved), RejectionReason::kOverloaded);
}

}  // namespace
}  // namespace timbre
