// BearerTokenAuth: checks the bearer token of every call against the server's user and admin
// tokens before any handler runs.
//
// It is a grpc::AuthMetadataProcessor, the one hook where gRPC C++ can refuse a call before its
// handler (server interceptors cannot); gRPC runs it only on secure (TLS) ports. A call sends
// its token as the metadata "authorization: Bearer <token>"; the processor removes that metadata,
// so no handler ever sees a token. The access a method needs comes from its full name
// (RequiredAccess): health and reflection are open, the timbre.v1.Timbre serving methods need a
// user or an admin token, and every other method needs the admin token.
//
// Tokens are kept only as SHA-256 digests and a presented token's digest is compared with each of
// them in constant time (CRYPTO_memcmp, every digest every time), so neither the timing nor the
// length of a guess reveals anything about a token.
//
// The tokens can be replaced while the server runs (ReplaceTokens, when the token files are
// rotated): each check takes the set in force when it starts and uses it throughout.
//
// Thread-safe.
#ifndef TIMBRE_SERVER_SECURITY_BEARER_TOKEN_AUTH_H_
#define TIMBRE_SERVER_SECURITY_BEARER_TOKEN_AUTH_H_

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/security/auth_metadata_processor.h"

namespace timbre {

// What a method needs of a caller.
enum class MethodAccess {
  kOpen,   // anyone: grpc.health.v1.Health, grpc.reflection.v1alpha / v1 ServerReflection
  kUser,   // a user or admin token: timbre.v1.Timbre's Blend, BlendStream, Search,
           // ListSpeakers, GetSpeaker
  kAdmin,  // the admin token: everything else, among them timbre.v1.IndexBuilder/*,
           // LoadSpeaker, UnloadSpeaker and any method added later
};

// The access `method`, a full name such as "/timbre.v1.Timbre/Blend", needs.
MethodAccess RequiredAccess(absl::string_view method);

// Shortest token accepted, in characters (`openssl rand -hex 32` makes 64).
inline constexpr size_t kMinTokenLength = 16;

// The tokens in the text of a token file: one per line, surrounding whitespace trimmed; blank
// lines and lines starting with '#' are skipped. Several tokens let a token be rotated without
// a restart of the clients. `source` names the file in errors. Errors: INVALID_ARGUMENT for text
// without a token, or a token shorter than kMinTokenLength or containing whitespace.
absl::StatusOr<std::vector<std::string>> ParseTokens(absl::string_view text,
                                                     absl::string_view source);

// The tokens a server accepts.
struct BearerTokens {
  // Tokens that may call user methods.
  std::vector<std::string> user;
  // Tokens that may call every method. None: admin methods are refused.
  std::vector<std::string> admin;
};

class BearerTokenAuth final : public grpc::AuthMetadataProcessor {
 public:
  using RefusalCallback =
      std::function<void(absl::string_view method, grpc::StatusCode code, absl::Duration took)>;

  struct Options {
    // The tokens accepted at first. Default none (Create needs at least one).
    BearerTokens tokens;
    // Told of every call Process refuses: its method's full name (":path", possibly empty or
    // not a method of the server), its code (UNAUTHENTICATED or PERMISSION_DENIED) and the
    // time the check took; on gRPC's thread; must not block. For the server's metrics.
    // Default none.
    RefusalCallback on_refused;
  };

  // Errors: INVALID_ARGUMENT when there is no token at all.
  static absl::StatusOr<std::shared_ptr<BearerTokenAuth>> Create(const Options& options);

  // Accepts `tokens` instead of the tokens in force, from the next check on; checks under way
  // finish with the old ones. Returns whether they differ from those in force. Errors:
  // INVALID_ARGUMENT when there is no token at all (the tokens in force stay).
  absl::StatusOr<bool> ReplaceTokens(const BearerTokens& tokens) ABSL_LOCKS_EXCLUDED(mutex_);

  // The check is a few microseconds of hashing: run it on gRPC's own thread.
  bool IsBlocking() const override { return false; }

  // Reads the method from ":path" and the token from "authorization", and answers Check's
  // status (telling Options::on_refused of a refusal); the authorization metadata is consumed.
  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

  // Whether a call of `method` with the authorization metadata `authorization` (none: nullopt)
  // may proceed: OK; UNAUTHENTICATED for a missing, malformed or unknown token;
  // PERMISSION_DENIED for a user token on an admin method.
  grpc::Status Check(absl::string_view method,
                     std::optional<absl::string_view> authorization) const;

 private:
  using Digest = std::array<unsigned char, 32>;
  struct Digests {
    std::vector<Digest> user;
    std::vector<Digest> admin;
  };
  enum class Role { kNone, kUser, kAdmin };

  BearerTokenAuth(std::shared_ptr<const Digests> digests,
                  RefusalCallback on_refused)
      : on_refused_(std::move(on_refused)), digests_(std::move(digests)) {}
  // The digests of `tokens`. Errors: INVALID_ARGUMENT when there is no token at all.
  static absl::StatusOr<std::shared_ptr<const Digests>> DigestsOf(const BearerTokens& tokens);
  Role RoleOf(absl::string_view token) const ABSL_LOCKS_EXCLUDED(mutex_);

  const RefusalCallback on_refused_;
  mutable absl::Mutex mutex_;
  // Replaced whole, never changed: a check copies the pointer and compares without the lock.
  std::shared_ptr<const Digests> digests_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_SECURITY_BEARER_TOKEN_AUTH_H_
