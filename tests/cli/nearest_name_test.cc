#include "client/cli/nearest_name.h"

#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace timbre {
namespace {

using ::testing::Optional;

TEST(EditDistanceTest, CountsInsertionsDeletionsAndSubstitutions) {
  EXPECT_EQ(EditDistance("", ""), 0);
  EXPECT_EQ(EditDistance("blend", "blend"), 0);
  EXPECT_EQ(EditDistance("", "abc"), 3);
  EXPECT_EQ(EditDistance("abc", ""), 3);
  EXPECT_EQ(EditDistance("blnd", "blend"), 1);     // insertion
  EXPECT_EQ(EditDistance("speakers", "speaker"), 1);  // deletion
  EXPECT_EQ(EditDistance("serch", "search"), 1);
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3);  // two substitutions, one insertion
  EXPECT_EQ(EditDistance("sitting", "kitten"), 3);  // symmetric
  EXPECT_EQ(EditDistance("job", "jobs"), 1);
}

TEST(NearestNameTest, NamesTheNearestLikelyMisspelling) {
  const std::vector<std::string> commands = {"speakers", "speaker", "blend", "search", "bench",
                                             "job", "jobs"};
  EXPECT_THAT(NearestName("blnd", commands), Optional(std::string("blend")));
  EXPECT_THAT(NearestName("serch", commands), Optional(std::string("search")));
  EXPECT_THAT(NearestName("speakr", commands), Optional(std::string("speaker")));
  // Equally near names: the first of them in the list.
  EXPECT_THAT(NearestName("jobx", commands), Optional(std::string("job")));
  EXPECT_THAT(NearestName("benc", commands), Optional(std::string("bench")));
}

TEST(NearestNameTest, NamesNothingThatIsTooFar) {
  const std::vector<std::string> commands = {"speakers", "blend", "bench"};
  EXPECT_EQ(NearestName("frobnicate", commands), std::nullopt);
  EXPECT_EQ(NearestName("xyz", commands), std::nullopt);
  EXPECT_EQ(NearestName("blend", {}), std::nullopt);
  // One edit is always allowed, however short the names; two are not for names under six.
  EXPECT_THAT(NearestName("k", {"k_factor", "q"}), Optional(std::string("q")));
  EXPECT_EQ(NearestName("blxnx", commands), std::nullopt);
}

}  // namespace
}  // namespace timbre
