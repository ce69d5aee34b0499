#include "server/io/random_id.h"

#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "tests/support/test_support.h"

namespace timbre {
namespace {

using ::testing::MatchesRegex;
using ::timbre::testing::IsOk;
using ::timbre::testing::StatusIs;

TEST(RandomIdTest, NewIdsHaveTheirFormAndDiffer) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string job = NewRandomId(kJobIdForm);
    EXPECT_THAT(job, MatchesRegex("job-[0-9a-f]{12}"));
    EXPECT_THAT(ValidateRandomId(kJobIdForm, job), IsOk());
    const std::string set = NewRandomId(kFeatureSetIdForm);
    EXPECT_THAT(set, MatchesRegex("fs-[0-9a-f]{16}"));
    EXPECT_THAT(ValidateRandomId(kFeatureSetIdForm, set), IsOk());
    seen.insert(job);
    seen.insert(set);
  }
  EXPECT_EQ(seen.size(), 200u);
}

TEST(RandomIdTest, ShortFormsTakeTheirDigits) {
  constexpr RandomIdForm kShort{"short id", "s.", 1};
  EXPECT_THAT(NewRandomId(kShort), MatchesRegex("s\\.[0-9a-f]"));
}

TEST(RandomIdTest, AnythingElseIsRefusedNamingTheExpectedForm) {
  for (const char* id : {"", "job-", "job-0123456789a", "job-0123456789abc", "job-0123456789AB",
                         "job-0123456789ag", "jab-0123456789ab", "fs-0123456789ab",
                         "job-../../etc/pa", "xjob-0123456789a", "job-0123456789a/"}) {
    EXPECT_THAT(ValidateRandomId(kJobIdForm, id),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         absl::StrCat("job id '", id,
                                      "' is malformed: expected \"job-\" and 12 lowercase hex "
                                      "digits")));
  }
  EXPECT_THAT(ValidateRandomId(kFeatureSetIdForm, "job-0123456789ab"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "feature set id 'job-0123456789ab' is malformed: expected \"fs-\" and 16 "
                       "lowercase hex digits"));
}

}  // namespace
}  // namespace timbre
