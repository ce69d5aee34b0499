// CredentialReloader: keeps a running server's TLS credentials and bearer tokens equal to the
// files named in its SecurityOptions, so that certificates and tokens can be rotated without a
// restart.
//
// Every SecurityOptions::reload_interval it reads the files again, with the checks made at start
// (ReadTlsFiles, ReadTokenFiles in credential_files.h), and hands files that changed and pass to
// ReloadableTlsCredentials::Replace and BearerTokenAuth::ReplaceTokens. Files that fail a check
// change nothing: the server never serves a half-written or mismatched certificate pair, and
// never ends up with no token, however a rotation goes wrong. A failure is logged as a warning
// (once for each distinct error: a file left broken does not fill the log) and the next reload
// tries again; a replacement is logged at info. Every outcome is also told to
// SecurityOptions::on_reloaded (for the server's metrics).
//
// Thread-safe.
#ifndef TIMBRE_SERVER_SECURITY_CREDENTIAL_RELOADER_H_
#define TIMBRE_SERVER_SECURITY_CREDENTIAL_RELOADER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "server/security/bearer_token_auth.h"
#include "server/security/reloadable_tls_credentials.h"
#include "server/security/security_options.h"

namespace timbre {

class CredentialReloader {
 public:
  struct Options {
    // The files to read and the interval (reload_interval; zero or infinite: reloads happen only
    // through ReloadNow). Required.
    SecurityOptions files;
    // Given the TLS files when they change; owned, so that its memory files live as long as the
    // reloader. Null without TLS. Default null.
    std::unique_ptr<ReloadableTlsCredentials> tls;
    // Given the tokens when they change. Null without token files. Default null.
    std::shared_ptr<BearerTokenAuth> auth;
  };

  // Starts reloading every files.reload_interval. REQUIRES: the interval is not negative
  // (MakeServerSecurity checks it).
  static std::unique_ptr<CredentialReloader> Start(Options options);
  // Stops reloading; waits for a reload under way.
  ~CredentialReloader();
  CredentialReloader(const CredentialReloader&) = delete;
  CredentialReloader& operator=(const CredentialReloader&) = delete;

  // What one reload did, for the TLS files and for the token files: true if changed files were
  // installed; false if nothing changed or there are no such files; an error from
  // ReadTlsFiles / ReadTokenFiles or from installing them, the credentials in use staying.
  struct Result {
    absl::StatusOr<bool> tls = false;
    absl::StatusOr<bool> tokens = false;
  };

  // Reloads at once (and logs as the periodic reloads do). Reloads never overlap.
  Result ReloadNow() ABSL_LOCKS_EXCLUDED(mutex_);

  // Reloads finished so far, periodic or through ReloadNow.
  int64_t reloads() const ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  explicit CredentialReloader(Options options) : options_(std::move(options)) {}
  absl::StatusOr<bool> ReloadTls() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  absl::StatusOr<bool> ReloadTokens() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  // Tells SecurityOptions::on_reloaded, if set, of `result` of a reload of `credentials`.
  void Report(absl::string_view credentials, const absl::StatusOr<bool>& result) const;
  // Logs `result` of a reload: a replacement as "reloaded <reloaded>", an error not logged last
  // time as "keeping <kept> in use: <error>"; remembers the error in `last_error`.
  void Log(const absl::StatusOr<bool>& result, const std::string& reloaded, const std::string& kept,
           std::string& last_error) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  const Options options_;
  mutable absl::Mutex mutex_;  // held through each reload
  std::string last_tls_error_ ABSL_GUARDED_BY(mutex_);
  std::string last_token_error_ ABSL_GUARDED_BY(mutex_);
  int64_t reloads_ ABSL_GUARDED_BY(mutex_) = 0;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_SECURITY_CREDENTIAL_RELOADER_H_
