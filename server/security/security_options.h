// SecurityOptions: the files a timbre server takes its TLS credentials and bearer tokens from,
// and how often it re-reads them. Used by MakeServerSecurity (server_security.h), which checks
// their combination, and by the units that read the files (credential_files.h) and keep them
// current (credential_reloader.h).
#ifndef TIMBRE_SERVER_SECURITY_SECURITY_OPTIONS_H_
#define TIMBRE_SERVER_SECURITY_SECURITY_OPTIONS_H_

#include <functional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/security/bearer_token_auth.h"

namespace timbre {

struct SecurityOptions {
  // PEM files of the server's certificate chain and private key. Both or neither; neither serves
  // plain text. Default: neither.
  std::string tls_cert_file;
  std::string tls_key_file;
  // PEM file of the CA certificates that sign client certificates. When set, every client must
  // present a certificate signed by one of them (mTLS). Needs TLS. Default: none.
  std::string tls_client_ca_file;
  // Token files (format: ParseTokens in bearer_token_auth.h). User tokens may call the serving
  // methods, admin tokens every method. Either or both; need TLS. Default: none, every call is
  // let through.
  std::string token_file;
  std::string admin_token_file;
  // How often the files above are read again while the server runs. Files that changed and pass
  // every check made at start replace the ones in use: new connections get the new certificate
  // and client CA, every call after the swap is checked against the new tokens. Files that fail
  // a check (unreadable, half written, a key that does not match its certificate, no token) are
  // logged as a warning and the credentials in use stay. Zero or infinite: never. Must not be
  // negative. Default 60 s.
  absl::Duration reload_interval = absl::Seconds(60);
  // Given to BearerTokenAuth as its Options::on_refused (see there). Default none.
  BearerTokenAuth::RefusalCallback on_token_refused;
  // Told of the outcome of every reload, once for the TLS files and once for the token files
  // (for those the server has): `credentials` is kTlsCredentials or kTokenCredentials, `result`
  // kReloadInstalled (changed files passed every check and replaced the ones in use),
  // kReloadUnchanged, or kReloadFailed (a check failed; the credentials in use stay). On the
  // reloading thread; must not block. Default none.
  std::function<void(absl::string_view credentials, absl::string_view result)> on_reloaded;
};

// The values SecurityOptions::on_reloaded is told, and every one of them.
inline constexpr absl::string_view kTlsCredentials = "tls";
inline constexpr absl::string_view kTokenCredentials = "tokens";
inline constexpr absl::string_view kReloadInstalled = "installed";
inline constexpr absl::string_view kReloadUnchanged = "unchanged";
inline constexpr absl::string_view kReloadFailed = "failed";
inline constexpr absl::string_view kReloadedCredentials[] = {kTlsCredentials, kTokenCredentials};
inline constexpr absl::string_view kReloadResults[] = {kReloadInstalled, kReloadUnchanged,
                                                       kReloadFailed};

}  // namespace timbre

#endif  // TIMBRE_SERVER_SECURITY_SECURITY_OPTIONS_H_
