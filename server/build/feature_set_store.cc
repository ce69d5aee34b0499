#include "server/build/feature_set_store.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/build/feature_file.h"
#include "server/build/feature_set_manifest.h"
#include "server/io/durable_write.h"
#include "server/io/posix_file.h"
#include "server/io/random_id.h"
#include "server/io/sha256.h"

namespace timbre {
namespace {

namespace fs = std::filesystem;

// Directories of sets being deleted: hidden, removed by Create() if a crash left one.
constexpr RandomIdForm kDeletingForm{"deleting directory", ".deleting-", 16};

// A read of a stored file that no longer matches what was stored is a changed file, whatever the
// reader found wrong with it; cancellation and I/O failures keep their code.
absl::Status AsChanged(const absl::Status& status, absl::string_view set_id) {
  if (status.code() != absl::StatusCode::kInvalidArgument &&
      status.code() != absl::StatusCode::kNotFound) {
    return status;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "feature set '", set_id, "' can no longer be read as it was stored: ", status.message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<FeatureSetStore>> FeatureSetStore::Create(Options options) {
  if (options.root.empty()) return absl::InvalidArgumentError("feature set root is empty");
  if (options.max_upload_bytes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_upload_bytes is ", options.max_upload_bytes, "; it must be at least 1"));
  }
  std::error_code error;
  if (fs::exists(options.root, error) && !fs::is_directory(options.root, error)) {
    return absl::InvalidArgumentError(
        absl::StrCat("feature set root '", options.root, "' is not a directory"));
  }
  fs::create_directories(options.root, error);
  if (error) {
    return ErrnoStatus(error.value(),
                       absl::StrCat("creating feature set root '", options.root, "'"));
  }
  if (!options.import_root.empty()) {
    const fs::path import_root = fs::canonical(options.import_root, error);
    if (error) {
      return ErrnoStatus(error.value(), absl::StrCat("import root '", options.import_root, "'"));
    }
    if (!fs::is_directory(import_root, error)) {
      return absl::InvalidArgumentError(
          absl::StrCat("import root '", options.import_root, "' is not a directory"));
    }
    options.import_root = import_root.string();
  }
  std::unique_ptr<FeatureSetStore> store(new FeatureSetStore(std::move(options)));
  if (absl::Status loaded = store->LoadExisting(); !loaded.ok()) return loaded;
  return store;
}

absl::Status FeatureSetStore::LoadExisting() {
  std::error_code error;
  std::map<std::string, std::shared_ptr<const StoredSet>> sets;
  for (fs::directory_iterator it(options_.root, error), end; !error && it != end;
       it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (absl::StartsWith(name, kStagingDirectoryPrefix) ||
        absl::StartsWith(name, kDeletingForm.prefix)) {
      std::error_code removal;
      fs::remove_all(it->path(), removal);
      if (removal) {
        return ErrnoStatus(removal.value(), absl::StrCat("removing '", it->path().string(), "'"));
      }
      continue;
    }
    std::error_code type_error;
    if (!ValidateRandomId(kFeatureSetIdForm, name).ok() || !it->is_directory(type_error)) {
      continue;
    }
    absl::StatusOr<timbre::v1::FeatureSetManifest> manifest =
        ReadFeatureManifest(it->path().string());
    if (!manifest.ok()) return manifest.status();
    auto set = std::make_shared<StoredSet>();
    set->info = FeatureSetInfoFromManifest(name, *manifest);
    set->manifest = *std::move(manifest);
    set->dir = it->path().string();
    sets.emplace(name, std::move(set));
  }
  if (error) {
    return ErrnoStatus(error.value(),
                       absl::StrCat("reading feature set root '", options_.root, "'"));
  }
  absl::MutexLock lock(&mutex_);
  sets_ = std::move(sets);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<FeatureSetUpload>> FeatureSetStore::BeginUpload() {
  absl::StatusOr<std::string> staging = CreateStagingDirectory(options_.root);
  if (!staging.ok()) return staging.status();
  const std::string dir = *staging;
  return std::unique_ptr<FeatureSetUpload>(new FeatureSetUpload(
      dir, options_.max_upload_bytes, [this, dir](timbre::v1::FeatureSetManifest manifest) {
        manifest.set_source(kUploadSource);
        return Publish(dir, std::move(manifest));
      }));
}

absl::StatusOr<FeatureSetInfo> FeatureSetStore::Publish(const std::string& staging_dir,
                                                        timbre::v1::FeatureSetManifest manifest) {
  std::sort(manifest.mutable_files()->begin(), manifest.mutable_files()->end(),
            [](const timbre::v1::FeatureFileManifest& a, const timbre::v1::FeatureFileManifest& b) {
              return a.name() < b.name();
            });
  manifest.set_format(1);
  manifest.set_created_at(absl::FormatTime(absl::RFC3339_full, absl::Now(), absl::UTCTimeZone()));
  if (absl::Status written = WriteFeatureManifest(staging_dir, manifest); !written.ok()) {
    return written;
  }
  // A fresh random id; another in the unlikely case that it is taken.
  absl::StatusOr<std::string> id = PublishStagedDirectory(
      staging_dir, options_.root, 100, [] { return NewRandomId(kFeatureSetIdForm); });
  if (!id.ok()) return id.status();
  auto set = std::make_shared<StoredSet>();
  set->info = FeatureSetInfoFromManifest(*id, manifest);
  set->manifest = std::move(manifest);
  set->dir = absl::StrCat(options_.root, "/", *id);
  FeatureSetInfo info = set->info;
  absl::MutexLock lock(&mutex_);
  sets_.emplace(*id, std::move(set));
  return info;
}

absl::StatusOr<std::shared_ptr<const FeatureSetStore::StoredSet>> FeatureSetStore::Find(
    absl::string_view id) const {
  if (absl::Status valid = ValidateRandomId(kFeatureSetIdForm, id); !valid.ok()) return valid;
  absl::MutexLock lock(&mutex_);
  auto it = sets_.find(std::string(id));
  if (it == sets_.end()) {
    return absl::NotFoundError(absl::StrCat("feature set '", id, "' not found"));
  }
  return it->second;
}

absl::StatusOr<FeatureSetInfo> FeatureSetStore::Get(absl::string_view id) const {
  absl::StatusOr<std::shared_ptr<const StoredSet>> set = Find(id);
  if (!set.ok()) return set.status();
  return (*set)->info;
}

std::vector<FeatureSetInfo> FeatureSetStore::List() const {
  std::vector<FeatureSetInfo> infos;
  {
    absl::MutexLock lock(&mutex_);
    for (const auto& [id, set] : sets_) infos.push_back(set->info);
  }
  std::stable_sort(
      infos.begin(), infos.end(),
      [](const FeatureSetInfo& a, const FeatureSetInfo& b) { return a.created_at < b.created_at; });
  return infos;
}

absl::Status FeatureSetStore::Delete(absl::string_view id) {
  if (absl::Status valid = ValidateRandomId(kFeatureSetIdForm, id); !valid.ok()) return valid;
  const std::string doomed = absl::StrCat(options_.root, "/", NewRandomId(kDeletingForm));
  {
    absl::MutexLock lock(&mutex_);
    auto it = sets_.find(std::string(id));
    if (it == sets_.end()) {
      return absl::NotFoundError(absl::StrCat("feature set '", id, "' not found"));
    }
    // Moved aside first, so that a crash never leaves a set directory half removed.
    if (std::rename(it->second->dir.c_str(), doomed.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("deleting feature set '", id, "': moving '",
                                              it->second->dir, "' aside: ", std::strerror(errno)));
    }
    sets_.erase(it);
  }
  // What is left behind on failure is hidden, and removed by the next Create().
  std::error_code error;
  fs::remove_all(doomed, error);
  return absl::OkStatus();
}

absl::StatusOr<FrameMatrix> FeatureSetStore::LoadRows(absl::string_view id,
                                                      BuildControl* control) const {
  absl::StatusOr<std::shared_ptr<const StoredSet>> set = Find(id);
  if (!set.ok()) return set.status();
  const FeatureSetInfo& info = (*set)->info;
  FrameMatrix frames;
  frames.rows = info.rows;
  frames.dim = info.dim;
  frames.values.resize(static_cast<size_t>(info.rows) * info.dim);
  int64_t rows_before = 0;
  for (int i = 0; i < static_cast<int>(info.files.size()); ++i) {
    if (IsCancelled(control)) return BuildCancelledError();
    if (absl::Status read = ReadSetFile(**set, i, frames.row(rows_before), rows_before, control);
        !read.ok()) {
      return read;
    }
    rows_before += info.files[i].rows;
  }
  ReportProgress(
      control, 1.0,
      absl::StrCat("read ", info.rows, " rows of ", info.files.size(), " feature files"));
  return frames;
}

absl::Status FeatureSetStore::ReadSetFile(const StoredSet& set, int index, float* out,
                                          int64_t rows_before, BuildControl* control) const {
  const timbre::v1::FeatureFileManifest& file = set.manifest.files(index);
  const bool imported = !file.path().empty();
  const std::string path = imported ? file.path() : absl::StrCat(set.dir, "/", file.name());
  const std::string label = imported ? file.path() : file.name();
  auto changed = [&](absl::string_view how) {
    return absl::FailedPreconditionError(
        absl::StrCat("feature set '", set.info.id, "': file '", label, "' ", how));
  };
  if (imported) {
    absl::StatusOr<FileStamp> stamp = StatFile(path);
    if (!stamp.ok()) {
      return changed(absl::StrCat("can no longer be read: ", stamp.status().message()));
    }
    if (stamp->bytes != static_cast<int64_t>(file.bytes()) || stamp->mtime_ns != file.mtime_ns()) {
      return changed(
          "changed since it was imported (size or modification time differ); import it again");
    }
  }
  Sha256 digest;
  absl::StatusOr<std::unique_ptr<NpyRowReader>> reader = OpenFeatureFile(path, label, &digest);
  if (!reader.ok()) return AsChanged(reader.status(), set.info.id);
  if ((*reader)->rows() != static_cast<int64_t>(file.rows()) ||
      (*reader)->row_size() != file.dim() ||
      FeatureDTypeName((*reader)->header().descr) != file.dtype()) {
    return changed("changed since it was stored: its shape or dtype differ");
  }
  const std::string message = absl::StrCat("reading feature file ", index + 1, " of ",
                                           set.info.files.size(), " '", file.name(), "'");
  const double total_rows = static_cast<double>(set.info.rows);
  absl::Status read = ReadFeatureRows(**reader, label, out, [&](int64_t rows_read) {
    if (IsCancelled(control)) return BuildCancelledError();
    ReportProgress(control, static_cast<double>(rows_before + rows_read) / total_rows, message);
    return absl::OkStatus();
  });
  if (!read.ok()) return AsChanged(read, set.info.id);
  if (const std::string now = digest.HexDigest(); now != file.sha256()) {
    return changed(absl::StrCat("changed since it was stored: its SHA-256 is now ", now, ", was ",
                                file.sha256()));
  }
  return absl::OkStatus();
}

}  // namespace timbre
