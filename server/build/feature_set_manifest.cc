#include "server/build/feature_set_manifest.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/build/feature_file.h"
#include "server/io/json_proto_file.h"
#include "server/io/sha256.h"

namespace timbre {
namespace {

// Why `manifest` breaks the rules, or "" if it keeps them.
std::string RuleBroken(const timbre::v1::FeatureSetManifest& manifest) {
  if (manifest.format() != 1) return absl::StrCat("format ", manifest.format(), " is not 1");
  if (manifest.files().empty()) return "it lists no files";
  absl::Time created_at;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, manifest.created_at(), &created_at, &error)) {
    return absl::StrCat("created_at '", manifest.created_at(), "': ", error);
  }
  for (int i = 0; i < manifest.files_size(); ++i) {
    const timbre::v1::FeatureFileManifest& file = manifest.files(i);
    const std::string where = absl::StrCat("file '", file.name(), "': ");
    if (i > 0 && !(manifest.files(i - 1).name() < file.name())) {
      return absl::StrCat(where, "files are not sorted by unique name");
    }
    if (file.path().empty()) {
      if (absl::Status valid = ValidateFeatureFileName(file.name()); !valid.ok()) {
        return std::string(valid.message());
      }
    } else if (file.path()[0] != '/') {
      return absl::StrCat(where, "path '", file.path(), "' is not absolute");
    }
    if (!IsFeatureDim(file.dim()) || file.dim() != manifest.files(0).dim()) {
      return absl::StrCat(where, "dim ", file.dim());
    }
    if (file.dtype() != "float32" && file.dtype() != "float16") {
      return absl::StrCat(where, "dtype '", file.dtype(), "'");
    }
    if (file.rows() < 1) return absl::StrCat(where, "no rows");
    if (!Sha256::IsHexDigest(file.sha256())) return absl::StrCat(where, "bad sha256");
  }
  return "";
}

}  // namespace

absl::StatusOr<timbre::v1::FeatureSetManifest> ReadFeatureManifest(const std::string& dir) {
  const std::string path = absl::StrCat(dir, "/", kFeatureManifestFileName);
  timbre::v1::FeatureSetManifest manifest;
  if (absl::Status read = ReadJsonProtoFile(path, "feature-set manifest", &manifest); !read.ok()) {
    return read;
  }
  if (const std::string broken = RuleBroken(manifest); !broken.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", path, "' is not valid feature-set manifest: ", broken));
  }
  return manifest;
}

absl::Status WriteFeatureManifest(const std::string& dir,
                                  const timbre::v1::FeatureSetManifest& manifest) {
  return WriteJsonProtoFile(absl::StrCat(dir, "/", kFeatureManifestFileName), manifest);
}

absl::Status AddFeatureFile(timbre::v1::FeatureSetManifest* manifest,
                            timbre::v1::FeatureFileManifest file) {
  for (const timbre::v1::FeatureFileManifest& other : manifest->files()) {
    if (other.name() == file.name()) {
      return absl::InvalidArgumentError(
          absl::StrCat("feature file '", file.name(), "' appears twice; names must be unique"));
    }
    if (other.dim() != file.dim()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "feature file '", file.name(), "' has dim ", file.dim(), " but '", other.name(),
          "' has dim ", other.dim(), "; all files of a set must have one dim"));
    }
  }
  *manifest->add_files() = std::move(file);
  return absl::OkStatus();
}

FeatureSetInfo FeatureSetInfoFromManifest(const std::string& id,
                                          const timbre::v1::FeatureSetManifest& manifest) {
  FeatureSetInfo info;
  info.id = id;
  info.source = manifest.source();
  std::string error;
  absl::ParseTime(absl::RFC3339_full, manifest.created_at(), &info.created_at, &error);
  for (const timbre::v1::FeatureFileManifest& file : manifest.files()) {
    FeatureFileInfo& out = info.files.emplace_back();
    out.name = file.name();
    out.rows = static_cast<int64_t>(file.rows());
    out.dim = static_cast<int>(file.dim());
    out.dtype = file.dtype();
    out.bytes = static_cast<int64_t>(file.bytes());
    out.sha256 = file.sha256();
    info.rows += out.rows;
    info.bytes += out.bytes;
    info.dim = out.dim;
  }
  return info;
}

}  // namespace timbre
