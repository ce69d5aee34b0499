// The .npy reader and the feature-file validator on arbitrary file contents: every input is
// either read or refused with a status; nothing crashes, leaks or reads out of bounds.
#include <cstdint>
#include <cstdlib>

#include "server/build/feature_file.h"
#include "server/io/npy_file.h"
#include "server/io/sha256.h"
#include "tests/fuzz/fuzz_scratch.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = timbre::fuzz::FuzzScratch::Get().WriteFile("input.npy", data, size);
  absl::StatusOr<timbre::NpyHeader> header = timbre::ReadNpyHeader(path);
  absl::StatusOr<timbre::NpyArray> array = timbre::ReadNpy(path);
  if (array.ok()) {
    // What the reader accepts is consistent: data holds product(shape) values of its type.
    int64_t values = 1;
    for (int64_t extent : array->shape) values *= extent;
    if (static_cast<int64_t>(array->data.size()) != values * timbre::NpyItemSize(array->descr)) {
      std::abort();
    }
  }
  timbre::Sha256 digest;
  absl::StatusOr<timbre::v1::FeatureFileManifest> checked =
      timbre::CheckFeatureFile(path, "input.npy", &digest);
  if (checked.ok() && !timbre::IsFeatureDim(checked->dim())) std::abort();
  return 0;
}
