#include "server/security/credential_files.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/io/posix_file.h"

namespace timbre {
namespace {

// A file named by `flag`, read whole.
struct FlagFile {
  const char* flag;
  std::string path;
  std::string contents;

  std::string Name() const { return absl::StrCat(flag, " '", path, "'"); }
};

// Largest TLS or token file read, in bytes: a certificate chain is a few KB.
constexpr int64_t kMaxCredentialFileBytes = 1 << 20;

absl::StatusOr<FlagFile> ReadFlagFile(const char* flag, const std::string& path) {
  // A regular file only (a FIFO put in its place would block the reloader), of bounded size.
  absl::StatusOr<std::string> contents =
      ReadSmallFile(path, kMaxCredentialFileBytes, absl::StrCat("'", path, "'"));
  if (!contents.ok()) {
    return absl::NotFoundError(absl::StrCat(flag, ": cannot read '", path, "': ",
                                            contents.status().message()));
  }
  return FlagFile{flag, path, *std::move(contents)};
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

}  // namespace

absl::StatusOr<TlsFiles> ReadTlsFiles(const SecurityOptions& options) {
  absl::StatusOr<FlagFile> cert = ReadFlagFile("--tls_cert", options.tls_cert_file);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<FlagFile> key = ReadFlagFile("--tls_key", options.tls_key_file);
  if (!key.ok()) return key.status();
  if (absl::Status pair = CheckKeyPair(*cert, *key); !pair.ok()) return pair;
  TlsFiles files;
  if (!options.tls_client_ca_file.empty()) {
    absl::StatusOr<FlagFile> ca = ReadFlagFile("--tls_client_ca", options.tls_client_ca_file);
    if (!ca.ok()) return ca.status();
    if (absl::StatusOr<X509Ptr> parsed = ParseCertificate(*ca); !parsed.ok()) {
      return parsed.status();
    }
    files.client_ca = std::move(ca->contents);
  }
  files.certificate_chain = std::move(cert->contents);
  files.private_key = std::move(key->contents);
  return files;
}

absl::StatusOr<BearerTokens> ReadTokenFiles(const SecurityOptions& options) {
  BearerTokens tokens;
  for (auto [flag, path, list] :
       {std::make_tuple("--token_file", &options.token_file, &tokens.user),
        std::make_tuple("--admin_token_file", &options.admin_token_file, &tokens.admin)}) {
    if (path->empty()) continue;
    absl::StatusOr<FlagFile> file = ReadFlagFile(flag, *path);
    if (!file.ok()) return file.status();
    absl::StatusOr<std::vector<std::string>> parsed = ParseTokens(file->contents, *path);
    if (!parsed.ok()) return parsed.status();
    *list = *std::move(parsed);
  }
  return tokens;
}

std::vector<std::string> SecretFileWarnings(const SecurityOptions& options) {
  std::vector<std::string> warnings;
  for (auto [flag, path] : {std::make_pair("--tls_key", &options.tls_key_file),
                            std::make_pair("--token_file", &options.token_file),
                            std::make_pair("--admin_token_file", &options.admin_token_file)}) {
    struct stat info;
    if (!path->empty() && stat(path->c_str(), &info) == 0 && (info.st_mode & S_IROTH) != 0) {
      warnings.push_back(
          absl::StrFormat("%s '%s' is readable by every user (mode %04o); chmod 600 it", flag,
                          *path, info.st_mode & 07777));
    }
  }
  return warnings;
}

}  // namespace timbre
