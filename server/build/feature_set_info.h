// What the feature-set store tells about a stored set of HuBERT features and its files.
//
// Plain values; thread-compatible.
#ifndef TIMBRE_SERVER_BUILD_FEATURE_SET_INFO_H_
#define TIMBRE_SERVER_BUILD_FEATURE_SET_INFO_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace timbre {

// Where a set came from: FeatureSetInfo::source of an uploaded set.
inline constexpr char kUploadSource[] = "upload";

// One .npy file of a feature set: a [rows, dim] array of float32 or float16.
struct FeatureFileInfo {
  std::string name;    // file name, e.g. "0_0.npy" or "total_fea.npy"
  int64_t rows = 0;    // frames in the file, >= 1
  int dim = 0;         // values per frame: 256 (RVC v1) or 768 (RVC v2)
  std::string dtype;   // "float32" or "float16" as stored; rows are read as float32
  int64_t bytes = 0;   // size of the whole .npy file (header included), bytes
  std::string sha256;  // SHA-256 of the whole file, 64 lowercase hex digits
};

struct FeatureSetInfo {
  std::string id;  // "fs-" and 16 lowercase hex digits, e.g. "fs-0123456789abcdef"
  // kUploadSource for an uploaded set; for an imported one, the absolute server path (directory
  // or file, symlinks resolved) it was imported from.
  std::string source;
  // Sorted byte-wise by name (Python's sorted(os.listdir()), the order RVC concatenates them in):
  // "10.npy" < "2.npy" < "a.npy". Rows are concatenated in this order.
  std::vector<FeatureFileInfo> files;
  int64_t rows = 0;       // sum of the files' rows
  int dim = 0;            // the files' common dim: 256 or 768
  int64_t bytes = 0;      // sum of the files' bytes
  absl::Time created_at;  // when the set was stored
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_BUILD_FEATURE_SET_INFO_H_
