// Token files: arbitrary text parsed as a token file. Every token accepted is at least
// kMinTokenLength characters without whitespace, and the text of an accepted file is never empty
// of tokens.
#include <cctype>
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "server/security/bearer_token_auth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::vector<std::string>> tokens = timbre::ParseTokens(text, "fuzz.tokens");
  if (!tokens.ok()) return 0;
  if (tokens->empty()) std::abort();
  for (const std::string& token : *tokens) {
    if (token.size() < timbre::kMinTokenLength) std::abort();
    for (char c : token) {
      if (std::isspace(static_cast<unsigned char>(c))) std::abort();
    }
  }
  return 0;
}
