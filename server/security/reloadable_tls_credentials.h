// ReloadableTlsCredentials: gRPC server credentials for TLS, optionally requiring and verifying
// client certificates (mTLS), whose certificate chain, private key and client CA can be replaced
// while the server runs. Connections made after a replacement handshake with the new files;
// open connections and the calls on them go on undisturbed.
//
// gRPC 1.51 changes a running server's certificates only through
// grpc::experimental::FileWatcherCertificateProvider, which reads files every few seconds and
// installs whatever it reads: given a key that does not belong to its certificate, or a file
// that holds no certificate, libgrpc 1.51.1 drops its TLS handshaker and fails every new
// connection until the files are right again. So the provider never watches the operator's
// files. It watches MemoryFiles (memory_file.h) that hold only files that passed ReadTlsFiles'
// checks (credential_files.h); the key and the certificate chain share one of them, so that a
// pair is replaced at once and gRPC cannot read the key of one pair with the certificate of
// another.
//
// gRPC reads the memory files every kPollSeconds: a replacement reaches new connections within
// that time.
//
// Thread-safe.
#ifndef TIMBRE_SERVER_SECURITY_RELOADABLE_TLS_CREDENTIALS_H_
#define TIMBRE_SERVER_SECURITY_RELOADABLE_TLS_CREDENTIALS_H_

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "server/security/credential_files.h"
#include "server/security/memory_file.h"

namespace timbre {

class ReloadableTlsCredentials {
 public:
  // How often gRPC reads the memory files, in seconds.
  static constexpr unsigned int kPollSeconds = 1;

  // Credentials serving `files`: with files.client_ca set, every client must present a
  // certificate signed by one of its CAs; without it, none is asked for. REQUIRES: `files` came
  // from ReadTlsFiles. Errors: those of MemoryFile::Create.
  static absl::StatusOr<std::unique_ptr<ReloadableTlsCredentials>> Create(const TlsFiles& files);

  // The credentials to listen with. They hold the memory files by path: this object must outlive
  // every server listening with them.
  std::shared_ptr<grpc::ServerCredentials> credentials() const { return credentials_; }

  // Serves `files` to connections made from gRPC's next read of the memory files on. Returns
  // whether they differ from the files served. REQUIRES: `files` came from ReadTlsFiles.
  // Errors: FAILED_PRECONDITION when `files` has a client CA and the credentials were created
  // without one, or the other way round (mTLS cannot be switched on or off while serving);
  // those of MemoryFile::Replace. On error the memory file that could not be replaced (the key
  // with the certificate chain, or the client CA) keeps what it held.
  absl::StatusOr<bool> Replace(const TlsFiles& files) ABSL_LOCKS_EXCLUDED(mutex_);

 private:
  ReloadableTlsCredentials(TlsFiles files, std::unique_ptr<MemoryFile> identity,
                           std::unique_ptr<MemoryFile> client_ca);

  // Destroyed in reverse order: the credentials and gRPC's provider before the files it reads.
  std::unique_ptr<MemoryFile> identity_;   // private key, then certificate chain
  std::unique_ptr<MemoryFile> client_ca_;  // null without mTLS
  std::shared_ptr<grpc::experimental::FileWatcherCertificateProvider> provider_;
  std::shared_ptr<grpc::ServerCredentials> credentials_;
  absl::Mutex mutex_;
  TlsFiles served_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_SECURITY_RELOADABLE_TLS_CREDENTIALS_H_
