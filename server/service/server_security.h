// ServerSecurity: the credentials a timbre server listens with, from files named in its options:
// TLS, optionally requiring client certificates (mTLS), and bearer tokens (BearerTokenAuth).
//
// Every file is read and checked at start, so a bad certificate, a key that does not belong to
// it or an empty token file stops the server with a message naming the file, instead of failing
// every handshake later. Bearer tokens need TLS: over plain text anyone on the network path could
// read them (and gRPC runs token checks only on TLS ports).
//
// The result also carries warnings for an operator, logged at every start: plain text, no
// authentication, secret files readable by other users.
//
// Thread-compatible: free functions.
#ifndef TIMBRE_SERVER_SERVICE_SERVER_SECURITY_H_
#define TIMBRE_SERVER_SERVICE_SERVER_SECURITY_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/support/status.h"

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
  // Told of every call the bearer token check refuses, with its code (UNAUTHENTICATED or
  // PERMISSION_DENIED), on gRPC's thread; must not block. Default none.
  std::function<void(grpc::StatusCode code)> on_token_refused;
};

struct ServerSecurity {
  std::shared_ptr<grpc::ServerCredentials> credentials;
  // For the operator, one line each: what is left open, and secret files others can read.
  std::vector<std::string> warnings;
};

// Errors: INVALID_ARGUMENT naming the flags for an incomplete combination (a certificate without
// its key, mTLS or tokens without TLS), for a file that holds no PEM certificate or key, a key
// that does not match the certificate, an expired certificate, or a bad token file;
// NOT_FOUND for a file that cannot be read.
absl::StatusOr<ServerSecurity> MakeServerSecurity(const SecurityOptions& options);

}  // namespace timbre

#endif  // TIMBRE_SERVER_SERVICE_SERVER_SECURITY_H_
