// BearerTokenAuth on its own: which methods need which token, the token file format, and the
// status of every combination of method and token. The same checks through a real TLS server
// are in server_security_test.cc.
#include "server/security/bearer_token_auth.h"

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "tests/support/server_test_support.h"
#include "timbre/v1/index_builder.pb.h"
#include "timbre/v1/timbre.pb.h"

namespace timbre {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::timbre::testing::IsOk;
using ::timbre::testing::StatusIs;
using ::timbre::testing::kAdminToken;
using ::timbre::testing::kNewUserToken;
using ::timbre::testing::kUserMethod;
using ::timbre::testing::kUserToken;

// The gRPC status as absl, for the shared matchers.
absl::Status AsAbsl(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

std::shared_ptr<BearerTokenAuth> MakeAuth() {
  BearerTokenAuth::Options options;
  options.tokens.user = {kUserToken};
  options.tokens.admin = {kAdminToken};
  auto auth = BearerTokenAuth::Create(options);
  EXPECT_THAT(auth, IsOk());
  return auth.ok() ? *auth : nullptr;
}

std::string Bearer(const std::string& token) { return "Bearer " + token; }

TEST(RequiredAccessTest, HealthAndReflectionAreOpen) {
  EXPECT_EQ(RequiredAccess("/grpc.health.v1.Health/Check"), MethodAccess::kOpen);
  EXPECT_EQ(RequiredAccess("/grpc.health.v1.Health/Watch"), MethodAccess::kOpen);
  EXPECT_EQ(RequiredAccess("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
            MethodAccess::kOpen);
  EXPECT_EQ(RequiredAccess("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            MethodAccess::kOpen);
}

// The full names of the methods of the service `service` of the API, from its descriptor, so
// that every method the API has is checked, those added later too.
std::vector<std::string> MethodsOf(const google::protobuf::ServiceDescriptor& service) {
  std::vector<std::string> methods;
  for (int i = 0; i < service.method_count(); ++i) {
    methods.push_back(absl::StrCat("/", service.full_name(), "/", service.method(i)->name()));
  }
  return methods;
}

TEST(RequiredAccessTest, ServingMethodsNeedAUserTokenAndTheOthersTheAdminToken) {
  const google::protobuf::FileDescriptor* api = v1::BlendRequest::descriptor()->file();
  const std::vector<std::string> timbre = MethodsOf(*api->FindServiceByName("Timbre"));
  ASSERT_EQ(timbre.size(), 7u);
  for (const std::string& method : timbre) {
    const bool admin = absl::EndsWith(method, "/LoadSpeaker") ||
                       absl::EndsWith(method, "/UnloadSpeaker");
    EXPECT_EQ(RequiredAccess(method), admin ? MethodAccess::kAdmin : MethodAccess::kUser)
        << method;
  }
  const std::vector<std::string> builder = MethodsOf(
      *v1::BuildIndexRequest::descriptor()->file()->FindServiceByName("IndexBuilder"));
  ASSERT_EQ(builder.size(), 10u);
  for (const std::string& method : builder) {
    EXPECT_EQ(RequiredAccess(method), MethodAccess::kAdmin) << method;
  }
}

TEST(RequiredAccessTest, UnknownMethodsNeedTheAdminToken) {
  for (const char* method : {"/timbre.v1.Timbre/SomethingAddedLater", "/timbre.v1.Timbre/BlendX",
                             "/timbre.v1.Timbre/Blend/", "/grpc.health.v1.HealthX/Check", ""}) {
    EXPECT_EQ(RequiredAccess(method), MethodAccess::kAdmin) << method;
  }
}

TEST(ParseTokensTest, OneTokenPerLineWithCommentsAndBlankLines) {
  EXPECT_THAT(ParseTokens(absl::StrCat("# rotated 2026-11-01\n\n  ", kUserToken, "  \r\n",
                                       kAdminToken, "\n"),
                          "tokens.txt"),
              ::timbre::testing::IsOkAndHolds(ElementsAre(kUserToken, kAdminToken)));
}

TEST(ParseTokensTest, BadFilesNameTheFileAndLineButNotTheToken) {
  EXPECT_THAT(ParseTokens("\n# nothing here\n", "empty.txt"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("'empty.txt'"), HasSubstr("holds no token"))));
  EXPECT_THAT(ParseTokens("# header\nshort-secret\n", "short.txt"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("'short.txt', line 2"), HasSubstr("12 characters"),
                             HasSubstr("at least 16"), Not(HasSubstr("short-secret")))));
  EXPECT_THAT(ParseTokens("two tokens-on-one-line-0123456789\n", "spaces.txt"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("line 1"), HasSubstr("whitespace"))));
}

TEST(BearerTokenAuthTest, NeedsAtLeastOneToken) {
  EXPECT_THAT(BearerTokenAuth::Create({}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at least one token")));
}

TEST(BearerTokenAuthTest, EveryTokenOnEveryKindOfMethod) {
  auto auth = MakeAuth();
  ASSERT_NE(auth, nullptr);
  const std::string user_method = "/timbre.v1.Timbre/Blend";
  const std::string admin_method = "/timbre.v1.IndexBuilder/Build";
  const std::string open_method = "/grpc.health.v1.Health/Check";
  for (const std::string& method : {user_method, admin_method}) {
    EXPECT_THAT(AsAbsl(auth->Check(method, std::nullopt)),
                StatusIs(absl::StatusCode::kUnauthenticated,
                         AllOf(HasSubstr("missing bearer token"), HasSubstr(method))));
    EXPECT_THAT(AsAbsl(auth->Check(method, Bearer("wrong-token-0123456789abcdef"))),
                StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("not valid")));
    EXPECT_THAT(AsAbsl(auth->Check(method, std::string("Basic dXNlcjpwYXNz"))),
                StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("'Bearer <token>'")));
    EXPECT_THAT(AsAbsl(auth->Check(method, Bearer(kAdminToken))), IsOk());
  }
  EXPECT_THAT(AsAbsl(auth->Check(user_method, Bearer(kUserToken))), IsOk());
  EXPECT_THAT(AsAbsl(auth->Check(user_method, "bearer " + std::string(kUserToken))), IsOk());
  EXPECT_THAT(AsAbsl(auth->Check(admin_method, Bearer(kUserToken))),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr(admin_method), HasSubstr("needs the admin token"))));
  EXPECT_THAT(AsAbsl(auth->Check(open_method, std::nullopt)), IsOk());
  EXPECT_THAT(AsAbsl(auth->Check(open_method, Bearer("wrong-token-0123456789abcdef"))), IsOk());
}

TEST(BearerTokenAuthTest, TokensDifferingInLengthOrOneCharacterAreRefused) {
  auto auth = MakeAuth();
  ASSERT_NE(auth, nullptr);
  std::string prefix(kUserToken);
  prefix.pop_back();
  std::string changed(kUserToken);
  changed.back() ^= 1;
  for (const std::string& guess : {prefix, changed, std::string(kUserToken) + "x", std::string(),
                                   std::string(kUserToken) + kUserToken}) {
    EXPECT_THAT(AsAbsl(auth->Check("/timbre.v1.Timbre/Search", Bearer(guess))),
                StatusIs(absl::StatusCode::kUnauthenticated, ::testing::_))
        << guess;
  }
}

TEST(BearerTokenAuthTest, ProcessReadsThePathAndConsumesTheToken) {
  auto auth = MakeAuth();
  ASSERT_NE(auth, nullptr);
  const std::string path = "/timbre.v1.Timbre/ListSpeakers";
  const std::string authorization = Bearer(kUserToken);
  grpc::AuthMetadataProcessor::InputMetadata metadata = {
      {":path", path}, {"authorization", authorization}, {"user-agent", "test"}};
  grpc::AuthMetadataProcessor::OutputMetadata consumed, response;
  EXPECT_THAT(AsAbsl(auth->Process(metadata, nullptr, &consumed, &response)), IsOk());
  EXPECT_THAT(consumed, ElementsAre(::testing::Pair("authorization", authorization)));
  // Without a path the call is treated as an admin call.
  grpc::AuthMetadataProcessor::InputMetadata no_path = {{"authorization", authorization}};
  EXPECT_THAT(AsAbsl(auth->Process(no_path, nullptr, &consumed, &response)),
              StatusIs(absl::StatusCode::kPermissionDenied, ::testing::_));
}

TEST(BearerTokenAuthTest, ProcessTellsOfEveryRefusalOnceWithItsMethod) {
  std::vector<std::pair<std::string, grpc::StatusCode>> refused;
  BearerTokenAuth::Options options;
  options.tokens.user = {kUserToken};
  options.on_refused = [&refused](absl::string_view method, grpc::StatusCode code,
                                  absl::Duration took) {
    EXPECT_GE(took, absl::ZeroDuration());
    refused.emplace_back(method, code);
  };
  auto auth = BearerTokenAuth::Create(options);
  ASSERT_THAT(auth, IsOk());
  grpc::AuthMetadataProcessor::OutputMetadata consumed, response;
  const std::string user = Bearer(kUserToken);
  const std::string unknown = Bearer("unknown-token-0123456789abcdef");
  for (const auto& [path, authorization] : std::vector<std::pair<std::string, std::string>>{
           {"/timbre.v1.Timbre/Blend", user},
           {"/grpc.health.v1.Health/Check", ""},
           {"/timbre.v1.Timbre/Blend", unknown},
           {"/timbre.v1.Timbre/LoadSpeaker", user}}) {
    grpc::AuthMetadataProcessor::InputMetadata metadata = {{":path", path}};
    if (!authorization.empty()) metadata.emplace("authorization", authorization);
    (*auth)->Process(metadata, nullptr, &consumed, &response);
  }
  EXPECT_THAT(refused,
              ElementsAre(::testing::Pair("/timbre.v1.Timbre/Blend",
                                          grpc::StatusCode::UNAUTHENTICATED),
                          ::testing::Pair("/timbre.v1.Timbre/LoadSpeaker",
                                          grpc::StatusCode::PERMISSION_DENIED)));
}

TEST(BearerTokenAuthTest, ReplacedTokensApplyToTheNextCheck) {
  auto auth = MakeAuth();
  ASSERT_NE(auth, nullptr);
  EXPECT_THAT(auth->ReplaceTokens({{kNewUserToken}, {kAdminToken}}),
              ::timbre::testing::IsOkAndHolds(true));
  EXPECT_THAT(AsAbsl(auth->Check(kUserMethod, Bearer(kNewUserToken))), IsOk());
  EXPECT_THAT(AsAbsl(auth->Check(kUserMethod, Bearer(kUserToken))),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("not valid")));
  EXPECT_THAT(AsAbsl(auth->Check("/timbre.v1.IndexBuilder/Build", Bearer(kAdminToken))), IsOk());
  // The same tokens again change nothing.
  EXPECT_THAT(auth->ReplaceTokens({{kNewUserToken}, {kAdminToken}}),
              ::timbre::testing::IsOkAndHolds(false));
}

TEST(BearerTokenAuthTest, ReplacingWithNoTokenKeepsTheTokensInForce) {
  auto auth = MakeAuth();
  ASSERT_NE(auth, nullptr);
  EXPECT_THAT(auth->ReplaceTokens({}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at least one token")));
  EXPECT_THAT(AsAbsl(auth->Check(kUserMethod, Bearer(kUserToken))), IsOk());
  EXPECT_THAT(AsAbsl(auth->Check(kUserMethod, Bearer(kNewUserToken))),
              StatusIs(absl::StatusCode::kUnauthenticated, ::testing::_));
}

TEST(BearerTokenAuthTest, ChecksWhileTokensAreReplacedSeeOneSetOrTheOther) {
  auto auth = MakeAuth();
  ASSERT_NE(auth, nullptr);
  // The admin token is in both sets: no check may refuse it, whichever set it meets.
  std::thread replacer([&auth] {
    for (int i = 0; i < 2000; ++i) {
      auth->ReplaceTokens({{i % 2 == 0 ? kNewUserToken : kUserToken}, {kAdminToken}}).IgnoreError();
    }
  });
  int refused = 0;
  for (int i = 0; i < 2000; ++i) refused += !auth->Check(kUserMethod, Bearer(kAdminToken)).ok();
  replacer.join();
  EXPECT_EQ(refused, 0);
}

}  // namespace
}  // namespace timbre
