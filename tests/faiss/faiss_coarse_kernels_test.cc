#include "server/faiss/faiss_coarse_kernels.h"

#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace timbre {
namespace coarse_kernels {
namespace {

// Random coded queries ([rows rounded up to kRowTile][groups * 4] bytes, padding rows at
// kQueryOffset as the coarse step leaves them) and codes ([blocks][groups][kBlock][4]).
struct ProductInputs {
  int rows, groups, blocks, stride;
  std::vector<uint8_t> queries;
  std::vector<int8_t> codes;
};

ProductInputs RandomInputs(int rows, int groups, int blocks, uint32_t seed) {
  std::mt19937 random(seed);
  std::uniform_int_distribution<int> byte(-kCodeMax, kCodeMax);
  ProductInputs in{rows, groups, blocks, blocks * kBlock, {}, {}};
  const int tiled = kRowTile * ((rows + kRowTile - 1) / kRowTile);
  in.queries.assign(static_cast<size_t>(tiled) * groups * 4, kQueryOffset);
  for (size_t i = 0; i < static_cast<size_t>(rows) * groups * 4; ++i) {
    in.queries[i] = static_cast<uint8_t>(byte(random) + kQueryOffset);
  }
  in.codes.resize(static_cast<size_t>(blocks) * groups * kBlock * 4);
  for (int8_t& code : in.codes) code = static_cast<int8_t>(byte(random));
  return in;
}

// The products of `kernels` for the real rows (the padding rows' are unspecified).
std::vector<int32_t> Products(const Kernels& kernels, const ProductInputs& in) {
  const int tiled = kRowTile * ((in.rows + kRowTile - 1) / kRowTile);
  std::vector<int32_t> products(static_cast<size_t>(tiled) * in.stride, -1);
  kernels.products(in.queries.data(), in.rows, in.codes.data(), in.groups, in.blocks,
                   products.data(), in.stride);
  products.resize(static_cast<size_t>(in.rows) * in.stride);
  return products;
}

// Every row count from one tile to several, alone and in pairs of tiles, with an odd and an even
// number of blocks: the fast kernels compute every product the portable ones do, exactly.
TEST(CoarseKernelsTest, ProductsOfEveryKernelSetAreThePortableOnes) {
  std::vector<const Kernels*> fast;
  if (CpuHasVnni()) fast.push_back(&kVnniKernels);
  if (CpuHasAmx()) fast.push_back(&kAmxKernels);
  if (fast.empty()) GTEST_SKIP() << "this CPU has neither AVX-512 VNNI nor AMX";
  uint32_t seed = 1;
  for (int rows : {1, 15, 16, 17, 31, 32, 33, 40, 48, 64, 70}) {
    for (int blocks : {1, 2, 5, 8}) {
      const ProductInputs in = RandomInputs(rows, 2 * kGroupTile, blocks, seed++);
      const std::vector<int32_t> portable = Products(kPortableKernels, in);
      for (const Kernels* kernels : fast) {
        EXPECT_EQ(Products(*kernels, in), portable)
            << "rows " << rows << ", blocks " << blocks
            << (kernels == &kAmxKernels ? ", AMX" : ", VNNI");
      }
    }
  }
}

}  // namespace
}  // namespace coarse_kernels
}  // namespace timbre
