// CredentialReloader over real TLS and token files in a scratch directory: rotated files are
// installed, files that fail a check leave the credentials in use, periodic reloads run by
// themselves. That new files reach connections is in reloadable_tls_credentials_test.cc and,
// through a whole server, server_security_test.cc.
#include "server/security/credential_reloader.h"

#include <filesystem>
#include <functional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/security/credential_files.h"
#include "spdlog/sinks/ostream_sink.h"
#include "spdlog/spdlog.h"
#include "tests/support/server_test_support.h"

namespace timbre {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::timbre::testing::IsOk;
using ::timbre::testing::IsOkAndHolds;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;
using ::timbre::testing::WriteFile;
using ::timbre::testing::kAdminToken;
using ::timbre::testing::kNewUserToken;
using ::timbre::testing::kUserMethod;
using ::timbre::testing::kUserToken;
using Code = absl::StatusCode;

class CredentialReloaderTest : public timbre::testing::TestWithCertificates {
 protected:
  // A reloader of live files holding server.pem, server.key, the client CA ca.pem and the user
  // and admin tokens, reloading every `interval`.
  void Start(absl::Duration interval = absl::ZeroDuration()) {
    CopyCert("server.pem", live_.Join("cert.pem"));
    CopyCert("server.key", live_.Join("key.pem"));
    CopyCert("ca.pem", live_.Join("client_ca.pem"));
    WriteFile(live_.Join("user.tokens"), absl::StrCat(kUserToken, "\n"));
    WriteFile(live_.Join("admin.tokens"), absl::StrCat(kAdminToken, "\n"));
    CredentialReloader::Options options;
    options.files.tls_cert_file = live_.Join("cert.pem");
    options.files.tls_key_file = live_.Join("key.pem");
    options.files.tls_client_ca_file = live_.Join("client_ca.pem");
    options.files.token_file = live_.Join("user.tokens");
    options.files.admin_token_file = live_.Join("admin.tokens");
    options.files.reload_interval = interval;
    options.files.on_reloaded = RecordReports();
    absl::StatusOr<TlsFiles> files = ReadTlsFiles(options.files);
    ASSERT_THAT(files, IsOk());
    auto tls = ReloadableTlsCredentials::Create(*files);
    ASSERT_THAT(tls, IsOk());
    options.tls = *std::move(tls);
    absl::StatusOr<BearerTokens> tokens = ReadTokenFiles(options.files);
    ASSERT_THAT(tokens, IsOk());
    auto auth = BearerTokenAuth::Create({*tokens, nullptr});
    ASSERT_THAT(auth, IsOk());
    auth_ = *auth;
    options.auth = *std::move(auth);
    reloader_ = CredentialReloader::Start(std::move(options));
  }

  // Whether `token` may call a user method now.
  bool Accepts(const std::string& token) const {
    return auth_->Check(kUserMethod, absl::StrCat("Bearer ", token)).ok();
  }

  // An on_reloaded that keeps what it is told for TakeReported.
  std::function<void(absl::string_view, absl::string_view)> RecordReports() {
    return [this](absl::string_view credentials, absl::string_view result) {
      absl::MutexLock lock(&reported_mutex_);
      reported_.push_back(absl::StrCat(credentials, " ", result));
    };
  }

  // The outcomes told to on_reloaded since the last call, as "<credentials> <result>".
  std::vector<std::string> TakeReported() {
    absl::MutexLock lock(&reported_mutex_);
    return std::exchange(reported_, {});
  }

  ScratchDir live_;
  absl::Mutex reported_mutex_;
  std::vector<std::string> reported_ ABSL_GUARDED_BY(reported_mutex_);
  std::shared_ptr<BearerTokenAuth> auth_;
  std::unique_ptr<CredentialReloader> reloader_;
};

// Captures what is logged through spdlog's default logger while it lives.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    spdlog::set_default_logger(std::make_shared<spdlog::logger>(
        "capture", std::make_shared<spdlog::sinks::ostream_sink_st>(text_)));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }

  // How many lines logged so far contain `part`.
  int Count(const std::string& part) const {
    int count = 0;
    std::istringstream lines(text_.str());
    for (std::string line; std::getline(lines, line);) {
      count += line.find(part) != std::string::npos;
    }
    return count;
  }

 private:
  std::ostringstream text_;
  std::shared_ptr<spdlog::logger> previous_;
};

TEST_F(CredentialReloaderTest, UnchangedFilesChangeNothing) {
  Start();
  const CredentialReloader::Result result = reloader_->ReloadNow();
  EXPECT_THAT(result.tls, IsOkAndHolds(false));
  EXPECT_THAT(result.tokens, IsOkAndHolds(false));
  EXPECT_EQ(reloader_->reloads(), 1);
}

TEST_F(CredentialReloaderTest, RotatedFilesAreInstalled) {
  Start();
  CopyCert("other_server.pem", live_.Join("cert.pem"));
  CopyCert("other_server.key", live_.Join("key.pem"));
  CopyCert("other_ca.pem", live_.Join("client_ca.pem"));
  WriteFile(live_.Join("user.tokens"), absl::StrCat("# rotated\n", kNewUserToken, "\n"));
  const CredentialReloader::Result result = reloader_->ReloadNow();
  EXPECT_THAT(result.tls, IsOkAndHolds(true));
  EXPECT_THAT(result.tokens, IsOkAndHolds(true));
  EXPECT_TRUE(Accepts(kNewUserToken));
  EXPECT_FALSE(Accepts(kUserToken));
  EXPECT_TRUE(Accepts(kAdminToken));
}

TEST_F(CredentialReloaderTest, EveryOutcomeIsToldForTheTlsFilesAndForTheTokens) {
  Start();
  reloader_->ReloadNow();
  EXPECT_THAT(TakeReported(), ElementsAre("tls unchanged", "tokens unchanged"));
  WriteFile(live_.Join("user.tokens"), absl::StrCat(kNewUserToken, "\n"));
  reloader_->ReloadNow();
  EXPECT_THAT(TakeReported(), ElementsAre("tls unchanged", "tokens installed"));
  WriteFile(live_.Join("cert.pem"), "not a certificate\n");
  WriteFile(live_.Join("admin.tokens"), "short\n");
  reloader_->ReloadNow();
  EXPECT_THAT(TakeReported(), ElementsAre("tls failed", "tokens failed"));
}

TEST_F(CredentialReloaderTest, OnlyTheCredentialsInUseAreReloadedAndTold) {
  WriteFile(live_.Join("user.tokens"), absl::StrCat(kUserToken, "\n"));
  CredentialReloader::Options options;
  options.files.token_file = live_.Join("user.tokens");
  options.files.reload_interval = absl::ZeroDuration();
  options.files.on_reloaded = RecordReports();
  auto auth = BearerTokenAuth::Create({{{kUserToken}, {}}, nullptr});
  ASSERT_THAT(auth, IsOk());
  options.auth = *auth;
  std::unique_ptr<CredentialReloader> reloader = CredentialReloader::Start(std::move(options));
  const CredentialReloader::Result result = reloader->ReloadNow();
  EXPECT_THAT(result.tls, IsOkAndHolds(false));
  EXPECT_THAT(result.tokens, IsOkAndHolds(false));
  EXPECT_THAT(TakeReported(), ElementsAre("tokens unchanged"));
}

TEST_F(CredentialReloaderTest, TlsFilesThatFailACheckKeepTheFilesInUse) {
  Start();
  struct Case {
    std::string file;      // the live file changed
    std::string contents;  // its new contents; empty: removed
    Code code;
    std::string message;
  };
  const std::vector<Case> cases = {
      // Half of a rotation: the new certificate with the old key.
      {"cert.pem", timbre::testing::ReadFile(Cert("other_server.pem")), Code::kInvalidArgument,
       "does not belong to the certificate"},
      {"key.pem", "", Code::kNotFound, "--tls_key: cannot read"},
      {"cert.pem", "-----BEGIN CERTIFICATE-----\nMIIB", Code::kInvalidArgument,
       "holds no PEM certificate"},
      {"client_ca.pem", "not a certificate\n", Code::kInvalidArgument, "--tls_client_ca '"},
  };
  for (const Case& bad : cases) {
    const std::string saved = timbre::testing::ReadFile(live_.Join(bad.file));
    if (bad.contents.empty()) {
      std::filesystem::remove(live_.Join(bad.file));
    } else {
      WriteFile(live_.Join(bad.file), bad.contents);
    }
    EXPECT_THAT(reloader_->ReloadNow().tls, StatusIs(bad.code, HasSubstr(bad.message))) << bad.file;
    // Back to the files in use: nothing to install, so the bad ones never were.
    WriteFile(live_.Join(bad.file), saved);
    EXPECT_THAT(reloader_->ReloadNow().tls, IsOkAndHolds(false)) << bad.file;
  }
}

TEST_F(CredentialReloaderTest, TokenFilesThatFailACheckKeepTheTokensInUse) {
  Start();
  struct Case {
    std::string contents;  // of the user token file; empty: removed
    Code code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"# emptied by mistake\n", Code::kInvalidArgument, "holds no token"},
      {"short-token\n", Code::kInvalidArgument, "at least 16"},
      {"", Code::kNotFound, "--token_file: cannot read"},
  };
  for (const Case& bad : cases) {
    if (bad.contents.empty()) {
      std::filesystem::remove(live_.Join("user.tokens"));
    } else {
      WriteFile(live_.Join("user.tokens"), bad.contents);
    }
    const CredentialReloader::Result result = reloader_->ReloadNow();
    EXPECT_THAT(result.tokens, StatusIs(bad.code, HasSubstr(bad.message))) << bad.contents;
    EXPECT_THAT(result.tls, IsOkAndHolds(false));
    EXPECT_TRUE(Accepts(kUserToken)) << bad.contents;
    EXPECT_TRUE(Accepts(kAdminToken)) << bad.contents;
    EXPECT_FALSE(Accepts("short-token")) << bad.contents;
  }
}

TEST_F(CredentialReloaderTest, AFileLeftBrokenIsWarnedAboutOnceForEachError) {
  Start();
  LogCapture log;
  WriteFile(live_.Join("user.tokens"), "# emptied\n");
  for (int i = 0; i < 3; ++i) reloader_->ReloadNow();
  EXPECT_EQ(log.Count("[warning] credentials: keeping the bearer tokens in use"), 1);
  WriteFile(live_.Join("user.tokens"), "short-token\n");
  reloader_->ReloadNow();
  EXPECT_EQ(log.Count("keeping the bearer tokens in use"), 2);
  EXPECT_EQ(log.Count("at least 16"), 1);

  WriteFile(live_.Join("user.tokens"), absl::StrCat(kNewUserToken, "\n"));
  reloader_->ReloadNow();
  reloader_->ReloadNow();
  EXPECT_EQ(log.Count("[info] credentials: reloaded the bearer tokens (--token_file '"), 1);
  // Broken again after a good reload: warned about again.
  WriteFile(live_.Join("user.tokens"), "# emptied\n");
  reloader_->ReloadNow();
  EXPECT_EQ(log.Count("holds no token"), 2);
  EXPECT_EQ(log.Count("TLS files"), 0);
}

TEST_F(CredentialReloaderTest, ReloadsRunByThemselvesEveryInterval) {
  Start(absl::Milliseconds(10));
  WriteFile(live_.Join("user.tokens"), absl::StrCat(kNewUserToken, "\n"));
  EXPECT_TRUE(timbre::testing::WaitFor([&] { return Accepts(kNewUserToken); }));
  EXPECT_FALSE(Accepts(kUserToken));
  const int64_t reloads = reloader_->reloads();
  EXPECT_TRUE(timbre::testing::WaitFor([&] { return reloader_->reloads() >= reloads + 2; }));
}

TEST_F(CredentialReloaderTest, ZeroIntervalReloadsOnlyWhenAsked) {
  Start(absl::ZeroDuration());
  WriteFile(live_.Join("user.tokens"), absl::StrCat(kNewUserToken, "\n"));
  // Only ReloadNow reloads: no reload has run, and the old token still works.
  EXPECT_EQ(reloader_->reloads(), 0);
  EXPECT_TRUE(Accepts(kUserToken));
  EXPECT_THAT(reloader_->ReloadNow().tokens, IsOkAndHolds(true));
  EXPECT_TRUE(Accepts(kNewUserToken));
}

}  // namespace
}  // namespace timbre
