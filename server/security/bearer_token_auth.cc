#include "server/security/bearer_token_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace timbre {
namespace {

constexpr absl::string_view kOpenServices[] = {
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
};

constexpr absl::string_view kUserMethods[] = {
    "/timbre.v1.Timbre/Blend",        "/timbre.v1.Timbre/BlendStream", "/timbre.v1.Timbre/Search",
    "/timbre.v1.Timbre/ListSpeakers", "/timbre.v1.Timbre/GetSpeaker",
};

constexpr absl::string_view kBearer = "Bearer ";

std::array<unsigned char, 32> Sha256(absl::string_view text) {
  std::array<unsigned char, 32> digest{};
  unsigned int size = 0;
  EVP_Digest(text.data(), text.size(), digest.data(), &size, EVP_sha256(), nullptr);
  return digest;
}

absl::string_view View(grpc::string_ref ref) { return absl::string_view(ref.data(), ref.size()); }

}  // namespace

MethodAccess RequiredAccess(absl::string_view method) {
  for (absl::string_view service : kOpenServices) {
    if (absl::StartsWith(method, service)) return MethodAccess::kOpen;
  }
  for (absl::string_view user_method : kUserMethods) {
    if (method == user_method) return MethodAccess::kUser;
  }
  return MethodAccess::kAdmin;
}

absl::StatusOr<std::vector<std::string>> ParseTokens(absl::string_view text,
                                                     absl::string_view source) {
  std::vector<std::string> tokens;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    const std::string where = absl::StrCat("token file '", source, "', line ", line_number, ": ");
    if (line.size() < kMinTokenLength) {
      return absl::InvalidArgumentError(absl::StrCat(where, "the token has ", line.size(),
                                                     " characters; use at least ", kMinTokenLength,
                                                     " (for example from `openssl rand -hex 32`)"));
    }
    if (std::any_of(line.begin(), line.end(), absl::ascii_isspace)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "a token cannot contain whitespace; put one token per line"));
    }
    tokens.emplace_back(line);
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("token file '", source, "' holds no token (one token per line)"));
  }
  return tokens;
}

absl::StatusOr<std::shared_ptr<const BearerTokenAuth::Digests>> BearerTokenAuth::DigestsOf(
    const BearerTokens& tokens) {
  if (tokens.user.empty() && tokens.admin.empty()) {
    return absl::InvalidArgumentError("bearer token checks need at least one token");
  }
  auto digests = std::make_shared<Digests>();
  for (const std::string& token : tokens.user) digests->user.push_back(Sha256(token));
  for (const std::string& token : tokens.admin) digests->admin.push_back(Sha256(token));
  return digests;
}

absl::StatusOr<std::shared_ptr<BearerTokenAuth>> BearerTokenAuth::Create(const Options& options) {
  absl::StatusOr<std::shared_ptr<const Digests>> digests = DigestsOf(options.tokens);
  if (!digests.ok()) return digests.status();
  return std::shared_ptr<BearerTokenAuth>(
      new BearerTokenAuth(*std::move(digests), options.on_refused));
}

absl::StatusOr<bool> BearerTokenAuth::ReplaceTokens(const BearerTokens& tokens) {
  absl::StatusOr<std::shared_ptr<const Digests>> digests = DigestsOf(tokens);
  if (!digests.ok()) return digests.status();
  absl::MutexLock lock(&mutex_);
  const bool changed = (*digests)->user != digests_->user || (*digests)->admin != digests_->admin;
  if (changed) digests_ = *std::move(digests);
  return changed;
}

BearerTokenAuth::Role BearerTokenAuth::RoleOf(absl::string_view token) const {
  std::shared_ptr<const Digests> digests;
  {
    absl::ReaderMutexLock lock(&mutex_);
    digests = digests_;
  }
  const Digest digest = Sha256(token);
  // Every digest is compared, whatever matched, so that the time taken says nothing.
  bool admin = false;
  for (const Digest& known : digests->admin) {
    admin |= CRYPTO_memcmp(known.data(), digest.data(), digest.size()) == 0;
  }
  bool user = false;
  for (const Digest& known : digests->user) {
    user |= CRYPTO_memcmp(known.data(), digest.data(), digest.size()) == 0;
  }
  if (admin) return Role::kAdmin;
  return user ? Role::kUser : Role::kNone;
}

grpc::Status BearerTokenAuth::Check(absl::string_view method,
                                    std::optional<absl::string_view> authorization) const {
  const MethodAccess access = RequiredAccess(method);
  if (access == MethodAccess::kOpen) return grpc::Status::OK;
  if (!authorization.has_value()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        absl::StrCat("missing bearer token: '", method,
                                     "' needs the metadata 'authorization: Bearer <token>'"));
  }
  absl::string_view value = *authorization;
  if (!absl::StartsWithIgnoreCase(value, kBearer)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "the authorization metadata is not of the form 'Bearer <token>'");
  }
  value.remove_prefix(kBearer.size());
  const Role role = RoleOf(absl::StripAsciiWhitespace(value));
  if (role == Role::kNone) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "the bearer token is not valid for this server");
  }
  if (access == MethodAccess::kAdmin && role != Role::kAdmin) {
    return grpc::Status(
        grpc::StatusCode::PERMISSION_DENIED,
        absl::StrCat("'", method, "' needs the admin token; the token sent is a user token"));
  }
  return grpc::Status::OK;
}

grpc::Status BearerTokenAuth::Process(const InputMetadata& auth_metadata,
                                      grpc::AuthContext* context,
                                      OutputMetadata* consumed_auth_metadata,
                                      OutputMetadata* response_metadata) {
  const absl::Time start = absl::Now();
  const auto path = auth_metadata.find(":path");
  // No method name: treated as the strictest, an admin method.
  const absl::string_view method = path != auth_metadata.end() ? View(path->second) : "";
  std::optional<absl::string_view> authorization;
  const auto found = auth_metadata.find("authorization");
  if (found != auth_metadata.end()) {
    authorization = View(found->second);
    consumed_auth_metadata->emplace("authorization", std::string(*authorization));
  }
  grpc::Status status = Check(method, authorization);
  if (!status.ok() && on_refused_) on_refused_(method, status.error_code(), absl::Now() - start);
  return status;
}

}  // namespace timbre
