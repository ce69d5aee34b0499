// Feature-set manifests: the FeatureSetManifest proto of one stored set, kept as JSON in
// <set dir>/manifest.json, and the FeatureSetInfo it describes.
//
// Part of FeatureSetStore; tested through feature_set_store_test.
// Thread-safe: free functions without state.
#ifndef TIMBRE_SERVER_BUILD_FEATURE_SET_MANIFEST_H_
#define TIMBRE_SERVER_BUILD_FEATURE_SET_MANIFEST_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/build/feature_set_info.h"
#include "timbre/v1/feature_set_manifest.pb.h"

namespace timbre {

inline constexpr char kFeatureManifestFileName[] = "manifest.json";

// Reads and checks <dir>/manifest.json. Errors: FAILED_PRECONDITION naming the file if it cannot
// be read, is not valid JSON, or breaks the rules: format 1, at least one file, files sorted by
// unique name, an uploaded file's name valid (feature_file.h), an imported file's path absolute,
// one dim of 256 or 768, dtype float32 or float16, rows >= 1, a 64-digit lowercase hex sha256.
absl::StatusOr<timbre::v1::FeatureSetManifest> ReadFeatureManifest(const std::string& dir);

// Writes <dir>/manifest.json durably (WriteJsonProtoFile). Errors: those of WriteJsonProtoFile,
// e.g. RESOURCE_EXHAUSTED for a full disk.
absl::Status WriteFeatureManifest(const std::string& dir,
                                  const timbre::v1::FeatureSetManifest& manifest);

// Appends `file` to `manifest` if its name is new and its dim is that of the files already
// there. Errors: INVALID_ARGUMENT naming both files for a repeated name or a different dim.
absl::Status AddFeatureFile(timbre::v1::FeatureSetManifest* manifest,
                            timbre::v1::FeatureFileManifest file);

// The info of the set `id` that `manifest` (as checked by ReadFeatureManifest) describes.
FeatureSetInfo FeatureSetInfoFromManifest(const std::string& id,
                                          const timbre::v1::FeatureSetManifest& manifest);

}  // namespace timbre

#endif  // TIMBRE_SERVER_BUILD_FEATURE_SET_MANIFEST_H_
