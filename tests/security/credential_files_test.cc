// ReadTlsFiles, ReadTokenFiles and SecretFileWarnings on the files of
// tests/data/make_test_certs.sh and token files. Their errors, as MakeServerSecurity reports them
// at start, are in server_security_test.cc; at reload, in credential_reloader_test.cc.
#include "server/security/credential_files.h"

#include <sys/stat.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "tests/support/server_test_support.h"

namespace timbre {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::timbre::testing::IsOk;
using ::timbre::testing::ReadFile;
using ::timbre::testing::ScratchDir;
using ::timbre::testing::StatusIs;
using ::timbre::testing::WriteFile;
using ::timbre::testing::kAdminToken;
using ::timbre::testing::kUserToken;

// The certificate files of the suite, and in `dir_` the token files and a copy of server.key
// (mode 0600) that tests may change.
class CredentialFilesTest : public timbre::testing::TestWithCertificates {
 protected:
  void SetUp() override {
    CopyCert("server.key", dir_.Join("server.key"));
    WriteFile(dir_.Join("user.tokens"), absl::StrCat(kUserToken, "\n"));
    WriteFile(dir_.Join("admin.tokens"), absl::StrCat("# admin\n", kAdminToken, "\n"));
    for (const char* secret : {"server.key", "user.tokens", "admin.tokens"}) {
      chmod(dir_.Join(secret).c_str(), 0600);
    }
  }

  SecurityOptions Tls() const {
    SecurityOptions options;
    options.tls_cert_file = Cert("server.pem");
    options.tls_key_file = dir_.Join("server.key");
    return options;
  }

  ScratchDir dir_;
};

TEST_F(CredentialFilesTest, ReadTlsFilesHoldsTheirText) {
  SecurityOptions options = Tls();
  absl::StatusOr<TlsFiles> files = ReadTlsFiles(options);
  ASSERT_THAT(files, IsOk());
  EXPECT_EQ(files->certificate_chain, ReadFile(Cert("server.pem")));
  EXPECT_EQ(files->private_key, ReadFile(Cert("server.key")));
  EXPECT_THAT(files->client_ca, IsEmpty());

  options.tls_client_ca_file = Cert("ca.pem");
  absl::StatusOr<TlsFiles> mutual = ReadTlsFiles(options);
  ASSERT_THAT(mutual, IsOk());
  EXPECT_EQ(mutual->client_ca, ReadFile(Cert("ca.pem")));
  EXPECT_NE(*mutual, *files);
}

TEST_F(CredentialFilesTest, ReadTokenFilesReadsTheFilesNamed) {
  SecurityOptions options;
  options.token_file = dir_.Join("user.tokens");
  absl::StatusOr<BearerTokens> user_only = ReadTokenFiles(options);
  ASSERT_THAT(user_only, IsOk());
  EXPECT_THAT(user_only->user, ElementsAre(kUserToken));
  EXPECT_THAT(user_only->admin, IsEmpty());

  options.admin_token_file = dir_.Join("admin.tokens");
  absl::StatusOr<BearerTokens> both = ReadTokenFiles(options);
  ASSERT_THAT(both, IsOk());
  EXPECT_THAT(both->user, ElementsAre(kUserToken));
  EXPECT_THAT(both->admin, ElementsAre(kAdminToken));
}

TEST_F(CredentialFilesTest, FifoOrDeviceInPlaceOfAFileIsRefusedWithoutWaiting) {
  // Before, a FIFO in place of a token file blocked the credential reloader for ever.
  ASSERT_EQ(mkfifo(dir_.Join("fifo.tokens").c_str(), 0600), 0);
  SecurityOptions options;
  options.token_file = dir_.Join("fifo.tokens");
  EXPECT_THAT(ReadTokenFiles(options),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr("--token_file: cannot read"), HasSubstr("fifo.tokens"),
                             HasSubstr("not a regular file"))));
  options.token_file = "/dev/zero";
  EXPECT_THAT(ReadTokenFiles(options),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("not a regular file")));
}

TEST_F(CredentialFilesTest, SecretFileWarningsNameEachSecretOthersCanRead) {
  SecurityOptions options = Tls();
  options.token_file = dir_.Join("user.tokens");
  options.admin_token_file = dir_.Join("admin.tokens");
  EXPECT_THAT(SecretFileWarnings(options), IsEmpty());

  chmod(dir_.Join("server.key").c_str(), 0644);
  chmod(dir_.Join("admin.tokens").c_str(), 0604);
  EXPECT_THAT(SecretFileWarnings(options),
              ElementsAre(AllOf(HasSubstr("--tls_key '"), HasSubstr("mode 0644")),
                          AllOf(HasSubstr("--admin_token_file '"), HasSubstr("mode 0604"),
                                HasSubstr("chmod 600"))));
  // A file that is gone is not a secret others can read; reading it reports it.
  std::remove(dir_.Join("server.key").c_str());
  EXPECT_THAT(SecretFileWarnings(options), ElementsAre(HasSubstr("--admin_token_file")));
}

}  // namespace
}  // namespace timbre
