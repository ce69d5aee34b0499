// Sha256: a streaming SHA-256 digest (FIPS 180-4) over bytes fed in any number of pieces, as
// `sha256sum` and Python's hashlib.sha256 compute it. Backed by OpenSSL's EVP interface.
//
// Thread-compatible: one digest per stream of bytes; distinct objects may be used concurrently.
#ifndef TIMBRE_SERVER_IO_SHA256_H_
#define TIMBRE_SERVER_IO_SHA256_H_

#include <memory>
#include <string>

#include "absl/strings/string_view.h"

struct evp_md_ctx_st;

namespace timbre {

class Sha256 {
 public:
  // Length of HexDigest(): 64 lowercase hex digits.
  static constexpr int kHexDigestLength = 64;

  // A digest of no bytes yet. Aborts only if OpenSSL cannot allocate its context, as an
  // allocation failure would.
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  // Feeds `data` (may be empty) after everything fed so far.
  void Update(absl::string_view data);

  // The digest of all bytes fed so far, as 64 lowercase hex digits. Does not end the stream:
  // Update() may continue and HexDigest() be asked again.
  std::string HexDigest() const;

  // One-shot: the lowercase hex digest of `data`.
  static std::string HexOf(absl::string_view data);

  // True if `text` has the form of HexDigest(): 64 lowercase hex digits.
  static bool IsHexDigest(absl::string_view text);

 private:
  struct ContextDeleter {
    void operator()(evp_md_ctx_st* context) const;
  };
  std::unique_ptr<evp_md_ctx_st, ContextDeleter> context_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_IO_SHA256_H_
