#include "server/security/credential_reloader.h"

#include <initializer_list>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/security/credential_files.h"
#include "spdlog/spdlog.h"

namespace timbre {
namespace {

// "--a 'path', --b 'path'" for those of the flags given a path.
std::string NamedFiles(
    std::initializer_list<std::pair<absl::string_view, const std::string&>> files) {
  std::vector<std::string> named;
  for (const auto& [flag, path] : files) {
    if (!path.empty()) named.push_back(absl::StrCat(flag, " '", path, "'"));
  }
  return absl::StrJoin(named, ", ");
}

}  // namespace

std::unique_ptr<CredentialReloader> CredentialReloader::Start(Options options) {
  const absl::Duration interval = options.files.reload_interval;
  std::unique_ptr<CredentialReloader> reloader(new CredentialReloader(std::move(options)));
  if (interval > absl::ZeroDuration() && interval != absl::InfiniteDuration()) {
    reloader->thread_ = std::thread([r = reloader.get(), interval] {
      while (!r->stop_.WaitForNotificationWithTimeout(interval)) r->ReloadNow();
    });
  }
  return reloader;
}

CredentialReloader::~CredentialReloader() {
  stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

CredentialReloader::Result CredentialReloader::ReloadNow() {
  absl::MutexLock lock(&mutex_);
  const SecurityOptions& files = options_.files;
  Result result;
  result.tls = ReloadTls();
  if (options_.tls != nullptr) Report(kTlsCredentials, result.tls);
  Log(result.tls,
      absl::StrCat("the TLS files (",
                   NamedFiles({{"--tls_cert", files.tls_cert_file},
                               {"--tls_key", files.tls_key_file},
                               {"--tls_client_ca", files.tls_client_ca_file}}),
                   "); new connections use them"),
      "the TLS files", last_tls_error_);
  result.tokens = ReloadTokens();
  if (options_.auth != nullptr) Report(kTokenCredentials, result.tokens);
  Log(result.tokens,
      absl::StrCat("the bearer tokens (",
                   NamedFiles({{"--token_file", files.token_file},
                               {"--admin_token_file", files.admin_token_file}}),
                   "); every call from now on is checked against them"),
      "the bearer tokens", last_token_error_);
  ++reloads_;
  return result;
}

int64_t CredentialReloader::reloads() const {
  absl::MutexLock lock(&mutex_);
  return reloads_;
}

absl::StatusOr<bool> CredentialReloader::ReloadTls() {
  if (options_.tls == nullptr) return false;
  absl::StatusOr<TlsFiles> files = ReadTlsFiles(options_.files);
  if (!files.ok()) return files.status();
  return options_.tls->Replace(*files);
}

absl::StatusOr<bool> CredentialReloader::ReloadTokens() {
  if (options_.auth == nullptr) return false;
  absl::StatusOr<BearerTokens> tokens = ReadTokenFiles(options_.files);
  if (!tokens.ok()) return tokens.status();
  return options_.auth->ReplaceTokens(*tokens);
}

void CredentialReloader::Report(absl::string_view credentials,
                                const absl::StatusOr<bool>& result) const {
  if (!options_.files.on_reloaded) return;
  absl::string_view outcome = kReloadUnchanged;
  if (!result.ok()) {
    outcome = kReloadFailed;
  } else if (*result) {
    outcome = kReloadInstalled;
  }
  options_.files.on_reloaded(credentials, outcome);
}

void CredentialReloader::Log(const absl::StatusOr<bool>& result, const std::string& reloaded,
                             const std::string& kept, std::string& last_error) {
  if (!result.ok()) {
    const std::string error = result.status().ToString();
    if (error != last_error) {
      spdlog::warn("credentials: keeping {} in use: {}", kept, error);
      last_error = error;
    }
    return;
  }
  last_error.clear();
  if (*result) spdlog::info("credentials: reloaded {}", reloaded);
}

}  // namespace timbre
