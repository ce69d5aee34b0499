#include "server/security/reloadable_tls_credentials.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace timbre {
namespace {

// The identity file gRPC reads twice, once as the private key and once as the certificate chain:
// OpenSSL's PEM readers skip the blocks of other kinds.
std::string IdentityContents(const TlsFiles& files) {
  return absl::StrCat(files.private_key, "\n", files.certificate_chain);
}

}  // namespace

ReloadableTlsCredentials::ReloadableTlsCredentials(TlsFiles files,
                                                   std::unique_ptr<MemoryFile> identity,
                                                   std::unique_ptr<MemoryFile> client_ca)
    : identity_(std::move(identity)), client_ca_(std::move(client_ca)), served_(std::move(files)) {
  provider_ = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      identity_->path(), identity_->path(), client_ca_ != nullptr ? client_ca_->path() : "",
      kPollSeconds);
  grpc::experimental::TlsServerCredentialsOptions options(provider_);
  options.watch_identity_key_cert_pairs();
  if (client_ca_ != nullptr) {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  credentials_ = grpc::experimental::TlsServerCredentials(options);
}

absl::StatusOr<std::unique_ptr<ReloadableTlsCredentials>> ReloadableTlsCredentials::Create(
    const TlsFiles& files) {
  absl::StatusOr<std::unique_ptr<MemoryFile>> identity =
      MemoryFile::Create("timbre-tls-identity", IdentityContents(files));
  if (!identity.ok()) return identity.status();
  std::unique_ptr<MemoryFile> client_ca;
  if (!files.client_ca.empty()) {
    absl::StatusOr<std::unique_ptr<MemoryFile>> ca =
        MemoryFile::Create("timbre-tls-client-ca", files.client_ca);
    if (!ca.ok()) return ca.status();
    client_ca = *std::move(ca);
  }
  return std::unique_ptr<ReloadableTlsCredentials>(
      new ReloadableTlsCredentials(files, *std::move(identity), std::move(client_ca)));
}

absl::StatusOr<bool> ReloadableTlsCredentials::Replace(const TlsFiles& files) {
  if (files.client_ca.empty() != (client_ca_ == nullptr)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the server was started ", client_ca_ == nullptr ? "without" : "with",
        " --tls_client_ca; client certificates cannot be switched on or off while it runs"));
  }
  absl::MutexLock lock(&mutex_);
  if (files == served_) return false;
  if (files.private_key != served_.private_key ||
      files.certificate_chain != served_.certificate_chain) {
    if (absl::Status replaced = identity_->Replace(IdentityContents(files)); !replaced.ok()) {
      return replaced;
    }
    served_.private_key = files.private_key;
    served_.certificate_chain = files.certificate_chain;
  }
  if (files.client_ca != served_.client_ca) {
    if (absl::Status replaced = client_ca_->Replace(files.client_ca); !replaced.ok()) {
      return replaced;
    }
    served_.client_ca = files.client_ca;
  }
  return true;
}

}  // namespace timbre
