#include "server/service/server_security.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/service/bearer_token_auth.h"

namespace timbre {
namespace {

// A file named by `flag`, read whole.
struct FlagFile {
  const char* flag;
  std::string path;
  std::string contents;

  std::string Name() const { return absl::StrCat(flag, " '", path, "'"); }
};

absl::StatusOr<FlagFile> ReadFlagFile(const char* flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat(flag, ": cannot read '", path, "': ", std::strerror(errno)));
  }
  std::stringstream contents;
  contents << in.rdbuf();
  return FlagFile{flag, path, contents.str()};
}

// As ReadFlagFile, for a key or token file: warns when every user can read it.
absl::StatusOr<FlagFile> ReadSecretFlagFile(const char* flag, const std::string& path,
                                            std::vector<std::string>& warnings) {
  absl::StatusOr<FlagFile> file = ReadFlagFile(flag, path);
  struct stat info;
  if (file.ok() && stat(path.c_str(), &info) == 0 && (info.st_mode & S_IROTH) != 0) {
    warnings.push_back(
        absl::StrFormat("%s '%s' is readable by every user (mode %04o); chmod 600 it", flag, path,
                        info.st_mode & 07777));
  }
  return file;
}

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* certificate) const { X509_free(certificate); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyDeleter>;

std::unique_ptr<BIO, BioDeleter> MemoryBio(const std::string& text) {
  return std::unique_ptr<BIO, BioDeleter>(
      BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// Refuses to ask for a passphrase: a server cannot type one.
int NoPassphrase(char*, int, int, void*) { return 0; }

// The first certificate of a PEM file, which must not have expired.
absl::StatusOr<X509Ptr> ParseCertificate(const FlagFile& file) {
  X509Ptr certificate(
      PEM_read_bio_X509(MemoryBio(file.contents).get(), nullptr, NoPassphrase, nullptr));
  ERR_clear_error();
  if (certificate == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(file.Name(), " holds no PEM certificate"));
  }
  if (X509_cmp_current_time(X509_get0_notAfter(certificate.get())) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the certificate in ", file.Name(), " has expired"));
  }
  return certificate;
}

// Checks that `key_file` holds an unencrypted PEM private key belonging to the first certificate
// of `cert_file`.
absl::Status CheckKeyPair(const FlagFile& cert_file, const FlagFile& key_file) {
  absl::StatusOr<X509Ptr> certificate = ParseCertificate(cert_file);
  if (!certificate.ok()) return certificate.status();
  KeyPtr key(
      PEM_read_bio_PrivateKey(MemoryBio(key_file.contents).get(), nullptr, NoPassphrase, nullptr));
  ERR_clear_error();
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(key_file.Name(), " holds no unencrypted PEM private key"));
  }
  const bool belongs = X509_check_private_key(certificate->get(), key.get()) == 1;
  ERR_clear_error();
  if (!belongs) {
    return absl::InvalidArgumentError(absl::StrCat("the key in ", key_file.Name(),
                                                   " does not belong to the certificate in ",
                                                   cert_file.Name()));
  }
  return absl::OkStatus();
}

// The token checks of the options' token files.
absl::StatusOr<std::shared_ptr<BearerTokenAuth>> MakeTokenAuth(const SecurityOptions& options,
                                                               std::vector<std::string>& warnings) {
  BearerTokenAuth::Options auth_options;
  auth_options.on_refused = options.on_token_refused;
  for (auto [flag, path, tokens] :
       {std::make_tuple("--token_file", &options.token_file, &auth_options.tokens.user),
        std::make_tuple("--admin_token_file", &options.admin_token_file,
                        &auth_options.tokens.admin)}) {
    if (path->empty()) continue;
    absl::StatusOr<FlagFile> file = ReadSecretFlagFile(flag, *path, warnings);
    if (!file.ok()) return file.status();
    absl::StatusOr<std::vector<std::string>> parsed = ParseTokens(file->contents, *path);
    if (!parsed.ok()) return parsed.status();
    *tokens = *std::move(parsed);
  }
  return BearerTokenAuth::Create(auth_options);
}

// Server credentials for the TLS files of `options` (REQUIRES: a certificate and key given).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeTlsCredentials(
    const SecurityOptions& options, std::vector<std::string>& warnings) {
  absl::StatusOr<FlagFile> cert = ReadFlagFile("--tls_cert", options.tls_cert_file);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<FlagFile> key = ReadSecretFlagFile("--tls_key", options.tls_key_file, warnings);
  if (!key.ok()) return key.status();
  if (absl::Status pair = CheckKeyPair(*cert, *key); !pair.ok()) return pair;
  grpc::SslServerCredentialsOptions ssl(
      options.tls_client_ca_file.empty()
          ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
          : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_key_cert_pairs.push_back({key->contents, cert->contents});
  if (!options.tls_client_ca_file.empty()) {
    absl::StatusOr<FlagFile> ca = ReadFlagFile("--tls_client_ca", options.tls_client_ca_file);
    if (!ca.ok()) return ca.status();
    if (absl::StatusOr<X509Ptr> parsed = ParseCertificate(*ca); !parsed.ok()) {
      return parsed.status();
    }
    ssl.pem_root_certs = ca->contents;
  }
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

absl::StatusOr<ServerSecurity> MakeServerSecurity(const SecurityOptions& options) {
  const bool tls = !options.tls_cert_file.empty();
  const bool mtls = !options.tls_client_ca_file.empty();
  const bool tokens = !options.token_file.empty() || !options.admin_token_file.empty();
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together: give both or neither");
  }
  if (!tls && mtls) {
    return absl::InvalidArgumentError(
        "--tls_client_ca needs TLS: give --tls_cert and --tls_key too");
  }
  if (!tls && tokens) {
    return absl::InvalidArgumentError(
        "--token_file and --admin_token_file need TLS (--tls_cert and --tls_key): a bearer "
        "token sent in plain text can be read by anyone on the network path");
  }

  ServerSecurity security;
  if (tls) {
    auto credentials = MakeTlsCredentials(options, security.warnings);
    if (!credentials.ok()) return credentials.status();
    security.credentials = *std::move(credentials);
  } else {
    security.credentials = grpc::InsecureServerCredentials();
    security.warnings.push_back(
        "TLS is off (no --tls_cert, --tls_key): calls and their frames travel in plain text");
  }
  if (tokens) {
    auto auth = MakeTokenAuth(options, security.warnings);
    if (!auth.ok()) return auth.status();
    security.credentials->SetAuthMetadataProcessor(*std::move(auth));
  } else if (mtls) {
    security.warnings.push_back(
        "no bearer tokens (--token_file, --admin_token_file): every client with a certificate "
        "signed by --tls_client_ca can call every method, admin ones included");
  } else {
    security.warnings.push_back(
        "the server is unauthenticated (no --token_file, --admin_token_file, --tls_client_ca): "
        "every client that reaches its port can call every method, admin ones included; serve "
        "it only on a trusted network");
  }
  return security;
}

}  // namespace timbre
