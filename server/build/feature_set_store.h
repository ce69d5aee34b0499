// FeatureSetStore: the speakers' HuBERT feature sets that index builds read, stored on the server
// by upload (FeatureSetUpload) or imported in place from a server directory.
//
// A feature set is what RVC's training reads to build a speaker's index: the .npy files of
// 3_feature768/ (or 3_feature256/), or one total_fea.npy; each a [rows, 256|768] float32 or
// float16 array (rules in feature_file.h). Every file is checked in full before a set is stored,
// so a build can rely on a set's rows. LoadRows() returns them as float32, files concatenated in
// byte-wise name order as RVC concatenates them.
//
// Layout of the root:
//   <root>/<id>/manifest.json   FeatureSetManifest as JSON: files, rows, dims, sizes, SHA-256s
//   <root>/<id>/<name>.npy      the files of an uploaded set (an imported set has none here)
//   <root>/.staging-*           an upload or import in progress
//   <root>/.deleting-*          a set being deleted
// A set is published atomically: written and synced in a staging directory, then renamed to its
// id. Create() removes staging and deleting directories left by a crash. Imported files are
// referenced by absolute path with their size, mtime and SHA-256; LoadRows() fails with
// FAILED_PRECONDITION if they changed since. Deleting an imported set leaves its files alone.
//
// Ids are "fs-" and 16 lowercase hex digits, chosen at random (kFeatureSetIdForm, random_id.h);
// every id a caller passes is checked against that form before the file system is touched.
//
// Thread-safe. One store per root: two stores (or processes) must not share a root, since each
// removes the other's staging directories when created.
#ifndef TIMBRE_SERVER_BUILD_FEATURE_SET_STORE_H_
#define TIMBRE_SERVER_BUILD_FEATURE_SET_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/build/feature_set_info.h"
#include "server/build/feature_set_upload.h"
#include "server/faiss/build_control.h"
#include "server/io/frame_codec.h"
#include "timbre/v1/feature_set_manifest.pb.h"

namespace timbre {

class FeatureSetStore {
 public:
  struct Options {
    // Directory holding the feature sets; created (with parents) if missing. Required.
    std::string root;
    // Server directory that ImportDirectory() may read from, itself and everything below it
    // (symlinks resolved). Must exist if set. Default empty: importing is disabled.
    std::string import_root;
    // Most bytes one upload may hold, summed over its files as BeginFile() announces them.
    // Default 4 GiB; must be > 0.
    int64_t max_upload_bytes = int64_t{4} << 30;
  };

  // Opens the store at options.root: creates the root if missing, removes staging and deleting
  // directories left by a crash, and reads the manifest of every set.
  // Errors: INVALID_ARGUMENT for an empty root, a root that is not a directory, an import_root
  // that is not a directory, or max_upload_bytes < 1; NOT_FOUND if import_root does not exist;
  // FAILED_PRECONDITION naming the file if a set directory has a missing or invalid manifest
  // (remove or repair it); RESOURCE_EXHAUSTED or INTERNAL if the root cannot be created or read.
  static absl::StatusOr<std::unique_ptr<FeatureSetStore>> Create(Options options);

  FeatureSetStore(const FeatureSetStore&) = delete;
  FeatureSetStore& operator=(const FeatureSetStore&) = delete;

  // Starts an upload (see feature_set_upload.h) in a new staging directory.
  // Errors: RESOURCE_EXHAUSTED or INTERNAL if the directory cannot be created.
  absl::StatusOr<std::unique_ptr<FeatureSetUpload>> BeginUpload();

  // Stores the feature files at `path` in place, without copying them: `path` is relative to
  // import_root or absolute, and names a directory (every regular, non-hidden *.npy file in it;
  // subdirectories are ignored) or one .npy file. Every file is checked in full, as an upload is.
  // Errors: FAILED_PRECONDITION if importing is disabled (no import_root) or a file changed while
  // being read; PERMISSION_DENIED naming `path` if it, or a symlink in it, leads outside
  // import_root; INVALID_ARGUMENT for an empty path, a file not named *.npy, a directory without
  // .npy files, or a file that breaks the rules of feature_file.h (naming it and the problem);
  // NOT_FOUND if `path` does not exist; RESOURCE_EXHAUSTED or INTERNAL for I/O failures.
  absl::StatusOr<FeatureSetInfo> ImportDirectory(absl::string_view path);

  // The set `id`. Errors: INVALID_ARGUMENT for a malformed id; NOT_FOUND for an unknown one.
  absl::StatusOr<FeatureSetInfo> Get(absl::string_view id) const;

  // Every stored set, oldest first (ties by id).
  std::vector<FeatureSetInfo> List() const;

  // Removes the set `id`: its directory, with the files of an uploaded set; an imported set's
  // files are left where they are. A LoadRows() of the set in progress may then fail.
  // Errors: INVALID_ARGUMENT for a malformed id; NOT_FOUND for an unknown one; INTERNAL if the
  // directory cannot be moved aside (the set stays).
  absl::Status Delete(absl::string_view id);

  // Every row of every file of set `id`, concatenated in file order (FeatureSetInfo::files), as a
  // float32 [rows, dim] matrix; float16 files are widened exactly. Reports progress to `control`
  // per block of rows ("reading feature file 2 of 5 'b.npy'") and checks it for cancellation
  // between blocks. `control` may be null. Each file's SHA-256 is checked as it is read.
  // Errors: INVALID_ARGUMENT for a malformed id; NOT_FOUND for an unknown one; CANCELLED
  // (BuildCancelledError()) once `control` is cancelled; FAILED_PRECONDITION naming the file if it
  // changed since the set was stored (size, mtime, SHA-256 or contents) or can no longer be read
  // (e.g. deleted); INTERNAL for read errors.
  absl::StatusOr<FrameMatrix> LoadRows(absl::string_view id, BuildControl* control) const;

 private:
  // A stored set: what it holds and where.
  struct StoredSet {
    FeatureSetInfo info;
    timbre::v1::FeatureSetManifest manifest;
    std::string dir;  // <root>/<id>
  };

  explicit FeatureSetStore(Options options) : options_(std::move(options)) {}

  // Reads the manifests under the root, removing leftovers of a crash.
  absl::Status LoadExisting();
  absl::StatusOr<std::shared_ptr<const StoredSet>> Find(absl::string_view id) const;
  // Sorts the manifest's files, stamps it, writes it into `staging_dir` (from
  // CreateStagingDirectory), publishes the directory under a fresh id and adds the set. The caller
  // removes `staging_dir` on error.
  absl::StatusOr<FeatureSetInfo> Publish(const std::string& staging_dir,
                                         timbre::v1::FeatureSetManifest manifest);
  // Reads one file of `set` into `out` for LoadRows.
  absl::Status ReadSetFile(const StoredSet& set, int index, float* out, int64_t rows_before,
                           BuildControl* control) const;

  const Options options_;  // import_root canonical
  mutable absl::Mutex mutex_;
  std::map<std::string, std::shared_ptr<const StoredSet>> sets_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_BUILD_FEATURE_SET_STORE_H_
