#include "server/security/server_security.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/security/bearer_token_auth.h"
#include "server/security/credential_files.h"

namespace timbre {
namespace {

absl::Status CheckCombination(const SecurityOptions& options) {
  const bool tls = !options.tls_cert_file.empty();
  const bool tokens = !options.token_file.empty() || !options.admin_token_file.empty();
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together: give both or neither");
  }
  if (!tls && !options.tls_client_ca_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls_client_ca needs TLS: give --tls_cert and --tls_key too");
  }
  if (!tls && tokens) {
    return absl::InvalidArgumentError(
        "--token_file and --admin_token_file need TLS (--tls_cert and --tls_key): a bearer "
        "token sent in plain text can be read by anyone on the network path");
  }
  if (options.reload_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("--credentials_reload_interval is ",
                                                   absl::FormatDuration(options.reload_interval),
                                                   "; it must be >= 0 (0 = never)"));
  }
  return absl::OkStatus();
}

// The token checks of the options' token files.
absl::StatusOr<std::shared_ptr<BearerTokenAuth>> MakeTokenAuth(const SecurityOptions& options) {
  absl::StatusOr<BearerTokens> tokens = ReadTokenFiles(options);
  if (!tokens.ok()) return tokens.status();
  BearerTokenAuth::Options auth_options;
  auth_options.tokens = *std::move(tokens);
  auth_options.on_refused = options.on_token_refused;
  return BearerTokenAuth::Create(auth_options);
}

}  // namespace

absl::StatusOr<ServerSecurity> MakeServerSecurity(const SecurityOptions& options) {
  if (absl::Status valid = CheckCombination(options); !valid.ok()) return valid;
  const bool tls = !options.tls_cert_file.empty();
  const bool mtls = !options.tls_client_ca_file.empty();
  const bool tokens = !options.token_file.empty() || !options.admin_token_file.empty();

  ServerSecurity security;
  CredentialReloader::Options reloaded;
  reloaded.files = options;
  if (tls) {
    absl::StatusOr<TlsFiles> files = ReadTlsFiles(options);
    if (!files.ok()) return files.status();
    auto credentials = ReloadableTlsCredentials::Create(*files);
    if (!credentials.ok()) return credentials.status();
    security.credentials = (*credentials)->credentials();
    reloaded.tls = *std::move(credentials);
  } else {
    security.credentials = grpc::InsecureServerCredentials();
    security.warnings.push_back(
        "TLS is off (no --tls_cert, --tls_key): calls and their frames travel in plain text");
  }
  if (tokens) {
    auto auth = MakeTokenAuth(options);
    if (!auth.ok()) return auth.status();
    security.credentials->SetAuthMetadataProcessor(*auth);
    reloaded.auth = *std::move(auth);
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
  for (std::string& warning : SecretFileWarnings(options)) {
    security.warnings.push_back(std::move(warning));
  }
  if (tls) security.reloader = CredentialReloader::Start(std::move(reloaded));
  return security;
}

}  // namespace timbre
