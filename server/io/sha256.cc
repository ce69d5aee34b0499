#include "server/io/sha256.h"

#include <openssl/evp.h>

#include <cstdlib>

namespace timbre {
namespace {

// OpenSSL fails these calls only when it cannot allocate; treat that as any allocation failure.
void CheckOpenSsl(int result) {
  if (result != 1) std::abort();
}

}  // namespace

void Sha256::ContextDeleter::operator()(evp_md_ctx_st* context) const { EVP_MD_CTX_free(context); }

Sha256::Sha256() : context_(EVP_MD_CTX_new()) {
  if (context_ == nullptr) std::abort();
  CheckOpenSsl(EVP_DigestInit_ex(context_.get(), EVP_sha256(), nullptr));
}

Sha256::~Sha256() = default;

void Sha256::Update(absl::string_view data) {
  if (data.empty()) return;
  CheckOpenSsl(EVP_DigestUpdate(context_.get(), data.data(), data.size()));
}

std::string Sha256::HexDigest() const {
  // Finish a copy so that this stream can go on.
  std::unique_ptr<evp_md_ctx_st, ContextDeleter> copy(EVP_MD_CTX_new());
  if (copy == nullptr) std::abort();
  CheckOpenSsl(EVP_MD_CTX_copy_ex(copy.get(), context_.get()));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  CheckOpenSsl(EVP_DigestFinal_ex(copy.get(), digest, &length));
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * length);
  for (unsigned int i = 0; i < length; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0xf]);
  }
  return hex;
}

std::string Sha256::HexOf(absl::string_view data) {
  Sha256 sha;
  sha.Update(data);
  return sha.HexDigest();
}

bool Sha256::IsHexDigest(absl::string_view text) {
  if (text.size() != kHexDigestLength) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace timbre
