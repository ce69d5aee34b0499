#include "server/io/sha256.h"

#include <string>

#include "gtest/gtest.h"

namespace timbre {
namespace {

// FIPS 180-4 example vectors (NIST CSRC "SHA256.pdf", "SHA256_2.pdf") and the one-million-'a'
// vector of FIPS 180-2.
constexpr char kEmpty[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr char kAbc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr char kTwoBlocks[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
constexpr char kTwoBlocksDigest[] =
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
constexpr char kMillionADigest[] =
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

TEST(Sha256Test, NistVectors) {
  EXPECT_EQ(Sha256::HexOf(""), kEmpty);
  EXPECT_EQ(Sha256::HexOf("abc"), kAbc);
  EXPECT_EQ(Sha256::HexOf(kTwoBlocks), kTwoBlocksDigest);
  EXPECT_EQ(Sha256::HexOf(std::string(1000000, 'a')), kMillionADigest);
}

TEST(Sha256Test, FreshDigestIsOfNoBytes) {
  Sha256 sha;
  EXPECT_EQ(sha.HexDigest(), kEmpty);
  sha.Update("");
  EXPECT_EQ(sha.HexDigest(), kEmpty);
  EXPECT_EQ(sha.HexDigest().size(), static_cast<size_t>(Sha256::kHexDigestLength));
}

TEST(Sha256Test, StreamingInPiecesEqualsOneShot) {
  const std::string million(1000000, 'a');
  for (size_t piece : {1, 7, 63, 64, 65, 4096, 999999}) {
    Sha256 sha;
    for (size_t at = 0; at < million.size(); at += piece) {
      sha.Update(absl::string_view(million).substr(at, piece));
    }
    EXPECT_EQ(sha.HexDigest(), kMillionADigest) << "pieces of " << piece;
  }
}

TEST(Sha256Test, DigestMidStreamDoesNotEndTheStream) {
  Sha256 sha;
  sha.Update("ab");
  EXPECT_EQ(sha.HexDigest(), Sha256::HexOf("ab"));
  sha.Update("c");
  EXPECT_EQ(sha.HexDigest(), kAbc);
  EXPECT_EQ(sha.HexDigest(), kAbc);
}

TEST(Sha256Test, IsHexDigestAcceptsOnlyLowercaseDigests) {
  EXPECT_TRUE(Sha256::IsHexDigest(kAbc));
  EXPECT_FALSE(Sha256::IsHexDigest(""));
  EXPECT_FALSE(Sha256::IsHexDigest(std::string(kAbc).substr(1)));
  EXPECT_FALSE(Sha256::IsHexDigest(std::string(kAbc) + "0"));
  EXPECT_FALSE(
      Sha256::IsHexDigest("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
  EXPECT_FALSE(Sha256::IsHexDigest(std::string(63, 'a') + "g"));
}

}  // namespace
}  // namespace timbre
