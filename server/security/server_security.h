// ServerSecurity: the credentials a timbre server listens with, from files named in its options:
// TLS, optionally requiring client certificates (mTLS), and bearer tokens (BearerTokenAuth).
//
// Every file is read and checked at start, so a bad certificate, a key that does not belong to
// it or an empty token file stops the server with a message naming the file, instead of failing
// every handshake later. Bearer tokens need TLS: over plain text anyone on the network path could
// read them (and gRPC runs token checks only on TLS ports).
//
// While the server runs, the files are read again every SecurityOptions::reload_interval and
// those that changed and pass the same checks replace the ones in use (CredentialReloader), so
// certificates and tokens rotate without a restart.
//
// The result also carries warnings for an operator, logged at every start: plain text, no
// authentication, secret files readable by other users.
//
// Thread-compatible: free functions.
#ifndef TIMBRE_SERVER_SECURITY_SERVER_SECURITY_H_
#define TIMBRE_SERVER_SECURITY_SERVER_SECURITY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/security/server_credentials.h"
#include "server/security/credential_reloader.h"
#include "server/security/security_options.h"

namespace timbre {

struct ServerSecurity {
  std::shared_ptr<grpc::ServerCredentials> credentials;
  // For the operator, one line each: what is left open, and secret files others can read.
  std::vector<std::string> warnings;
  // Keeps the TLS files and tokens of `credentials` current. It must outlive every server
  // listening with `credentials`: they read the TLS files from it. Null for plain text.
  std::unique_ptr<CredentialReloader> reloader;
};

// Errors: INVALID_ARGUMENT naming the flags for an incomplete combination (a certificate without
// its key, mTLS or tokens without TLS) or a negative reload interval, and for a file that holds
// no PEM certificate or key, a key that does not match the certificate, an expired certificate,
// or a bad token file; NOT_FOUND for a file that cannot be read; those of
// ReloadableTlsCredentials::Create.
absl::StatusOr<ServerSecurity> MakeServerSecurity(const SecurityOptions& options);

}  // namespace timbre

#endif  // TIMBRE_SERVER_SECURITY_SERVER_SECURITY_H_
