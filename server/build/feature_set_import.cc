// FeatureSetStore::ImportDirectory: storing feature files that are already on the server, in
// place.
#include <algorithm>
#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/build/feature_file.h"
#include "server/build/feature_set_manifest.h"
#include "server/build/feature_set_store.h"
#include "server/io/durable_write.h"
#include "server/io/posix_file.h"
#include "server/io/sha256.h"

namespace timbre {
namespace {

namespace fs = std::filesystem;

// True if `path` is `root` or lies below it; both absolute and normal.
bool IsInside(const fs::path& root, const fs::path& path) {
  const std::string base = root.string();
  std::string inner = path.string();
  while (inner.size() > 1 && inner.back() == '/') inner.pop_back();
  if (base == "/" || inner == base) return true;
  return absl::StartsWith(inner, base) && inner[base.size()] == '/';
}

absl::Status OutsideImportRoot(absl::string_view path) {
  return absl::PermissionDeniedError(
      absl::StrCat("'", path, "' is outside the directory the server may import from"));
}

struct ImportFile {
  std::string name;  // file name
  std::string path;  // canonical absolute path
};

// The canonical path of what ImportDirectory(path) reads, inside `import_root` (canonical).
absl::StatusOr<std::string> ResolveImportPath(const std::string& import_root,
                                              absl::string_view path) {
  if (import_root.empty()) {
    return absl::FailedPreconditionError(
        "importing server directories is disabled: the server has no import root");
  }
  if (path.empty()) return absl::InvalidArgumentError("the import path is empty");
  const fs::path root(import_root);
  const fs::path given{std::string(path)};
  // Resolves "..", "." and the symlinks of the part that exists; what is outside the root is
  // refused whether or not it exists.
  std::error_code error;
  const fs::path resolved = fs::weakly_canonical(given.is_absolute() ? given : root / given, error);
  if (error) return ErrnoStatus(error.value(), absl::StrCat("import path '", path, "'"));
  if (!IsInside(root, resolved)) return OutsideImportRoot(path);
  if (!fs::exists(resolved, error)) {
    return absl::NotFoundError(absl::StrCat("import path '", path, "' does not exist"));
  }
  return resolved.string();
}

// The manifest entry of the imported file `path` named `name`, checked in full.
absl::StatusOr<timbre::v1::FeatureFileManifest> CheckImportedFile(const std::string& path,
                                                                  const std::string& name) {
  absl::StatusOr<FileStamp> before = StatFile(path);
  if (!before.ok()) return before.status();
  Sha256 digest;
  absl::StatusOr<timbre::v1::FeatureFileManifest> file = CheckFeatureFile(path, path, &digest);
  if (!file.ok()) return file.status();
  absl::StatusOr<FileStamp> after = StatFile(path);
  if (!after.ok()) return after.status();
  if (*after != *before || static_cast<int64_t>(file->bytes()) != before->bytes) {
    return absl::FailedPreconditionError(absl::StrCat(
        "'", path, "' changed while it was being imported; import it again once it is complete"));
  }
  file->set_name(name);
  file->set_path(path);
  file->set_mtime_ns(before->mtime_ns);
  return file;
}

// The feature files at `resolved` (from ResolveImportPath(path)), sorted by name: the file
// itself, or every regular, non-hidden *.npy file of the directory.
absl::StatusOr<std::vector<ImportFile>> ListImportFiles(const fs::path& root,
                                                        const std::string& resolved,
                                                        absl::string_view path) {
  std::vector<ImportFile> files;
  std::error_code error;
  if (fs::is_regular_file(resolved, error)) {
    const std::string name = fs::path(resolved).filename().string();
    if (!absl::EndsWith(name, ".npy")) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", path, "' is not a .npy file or a directory of them"));
    }
    return std::vector<ImportFile>{{name, resolved}};
  }
  if (!fs::is_directory(resolved, error)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is neither a directory nor a regular file"));
  }
  for (fs::directory_iterator it(resolved, error), end; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename().string();
    std::error_code type_error;
    if (absl::StartsWith(name, ".") || !absl::EndsWith(name, ".npy") ||
        !it->is_regular_file(type_error)) {
      continue;
    }
    const fs::path file = fs::canonical(it->path(), type_error);
    if (type_error || !IsInside(root, file)) return OutsideImportRoot(it->path().string());
    files.push_back({name, file.string()});
  }
  if (error) return ErrnoStatus(error.value(), absl::StrCat("reading '", path, "'"));
  if (files.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' holds no .npy files"));
  }
  std::sort(files.begin(), files.end(),
            [](const ImportFile& a, const ImportFile& b) { return a.name < b.name; });
  return files;
}

}  // namespace

absl::StatusOr<FeatureSetInfo> FeatureSetStore::ImportDirectory(absl::string_view path) {
  absl::StatusOr<std::string> resolved = ResolveImportPath(options_.import_root, path);
  if (!resolved.ok()) return resolved.status();
  absl::StatusOr<std::vector<ImportFile>> files =
      ListImportFiles(options_.import_root, *resolved, path);
  if (!files.ok()) return files.status();
  timbre::v1::FeatureSetManifest manifest;
  manifest.set_source(*resolved);
  for (const ImportFile& file : *files) {
    absl::StatusOr<timbre::v1::FeatureFileManifest> checked =
        CheckImportedFile(file.path, file.name);
    if (!checked.ok()) return checked.status();
    if (absl::Status added = AddFeatureFile(&manifest, *std::move(checked)); !added.ok()) {
      return added;
    }
  }
  absl::StatusOr<std::string> staging = CreateStagingDirectory(options_.root);
  if (!staging.ok()) return staging.status();
  absl::StatusOr<FeatureSetInfo> info = Publish(*staging, std::move(manifest));
  if (!info.ok()) {
    std::error_code error;
    fs::remove_all(*staging, error);
  }
  return info;
}

}  // namespace timbre
