// Reading and checking the credential files named in SecurityOptions: the TLS certificate chain,
// private key and client CA, and the bearer token files. The same checks run when the server
// starts (MakeServerSecurity) and every time the files are read again (CredentialReloader), so
// that a file the server would refuse at start never replaces one in use.
//
// Every error names the flag and the file; none quotes a key or a token.
//
// Thread-safe: free functions without state.
#ifndef TIMBRE_SERVER_SECURITY_CREDENTIAL_FILES_H_
#define TIMBRE_SERVER_SECURITY_CREDENTIAL_FILES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/security/bearer_token_auth.h"
#include "server/security/security_options.h"

namespace timbre {

// The contents of the TLS files, PEM text as read.
struct TlsFiles {
  std::string certificate_chain;  // --tls_cert
  std::string private_key;        // --tls_key
  std::string client_ca;          // --tls_client_ca; empty without mTLS

  bool operator==(const TlsFiles& other) const {
    return certificate_chain == other.certificate_chain && private_key == other.private_key &&
           client_ca == other.client_ca;
  }
  bool operator!=(const TlsFiles& other) const { return !(*this == other); }
};

// Reads the TLS files of `options` and checks that the certificate file starts with a PEM
// certificate that has not expired, that the key file holds an unencrypted PEM private key that
// belongs to that certificate, and that the client CA file (if named) starts with a PEM
// certificate that has not expired. REQUIRES: options.tls_cert_file and tls_key_file are set.
// Errors: NOT_FOUND for a file that cannot be read; INVALID_ARGUMENT for a failed check.
absl::StatusOr<TlsFiles> ReadTlsFiles(const SecurityOptions& options);

// Reads the token files of `options` (those named; ParseTokens' format). Errors: NOT_FOUND for a
// file that cannot be read; INVALID_ARGUMENT for a file ParseTokens refuses, e.g. one without a
// token.
absl::StatusOr<BearerTokens> ReadTokenFiles(const SecurityOptions& options);

// One line for each key or token file of `options` that every user of the machine can read.
std::vector<std::string> SecretFileWarnings(const SecurityOptions& options);

}  // namespace timbre

#endif  // TIMBRE_SERVER_SECURITY_CREDENTIAL_FILES_H_
