// FeatureSetUpload: one client's upload of a feature set into the FeatureSetStore, file by file
// and chunk by chunk, as a client-streaming RPC delivers it.
//
// For each file: BeginFile(name, size, sha256), then Append(chunk) until `size` bytes have come;
// after the last file, Finish(). Bytes go to a hidden staging directory of the store; nothing is
// visible in the store until Finish() publishes the set atomically.
//
// A file is checked in full when the next BeginFile() or Finish() arrives: its byte count and
// SHA-256 against what its BeginFile() announced, then its contents (the rules of
// feature_file.h: a [rows, 256|768] float32/float16 C-order array of finite values), and its dim
// against the files before it. So a bad file fails the call after its last chunk, not the end of
// a long upload.
//
// Any error ends the upload: its staging directory is removed at once and every later call
// returns FAILED_PRECONDITION. Destroying an unfinished upload removes the staging directory too.
//
// Thread-compatible: one upload per client stream, called by one thread at a time; distinct
// uploads may run concurrently. REQUIRES: the FeatureSetStore outlives its uploads.
#ifndef TIMBRE_SERVER_BUILD_FEATURE_SET_UPLOAD_H_
#define TIMBRE_SERVER_BUILD_FEATURE_SET_UPLOAD_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/build/feature_set_info.h"
#include "server/io/posix_file.h"
#include "server/io/sha256.h"
#include "timbre/v1/feature_set_manifest.pb.h"

namespace timbre {

class FeatureSetUpload {
 public:
  ~FeatureSetUpload();
  FeatureSetUpload(const FeatureSetUpload&) = delete;
  FeatureSetUpload& operator=(const FeatureSetUpload&) = delete;

  // Starts the next file: `name` is a plain file name ending in ".npy" (ValidateFeatureFileName:
  // [A-Za-z0-9._-], no leading '.', at most 255 characters), unique in the set; `size_bytes` the
  // exact size of the whole .npy file (> 0); `sha256_hex` its SHA-256 as 64 hex digits (either
  // case). First checks the previous file in full (see above).
  // Errors: FAILED_PRECONDITION if the upload has finished or failed; INVALID_ARGUMENT for a bad
  // or repeated name, size_bytes < 1 or a malformed digest, or the previous file's failure
  // (Finish() lists them); RESOURCE_EXHAUSTED, naming the file, if the announced sizes of all
  // files exceed FeatureSetStore::Options::max_upload_bytes (marked RejectionReason::kTooLarge,
  // rejection.h), or the disk is full (unmarked); INTERNAL for other I/O failures.
  absl::Status BeginFile(absl::string_view name, int64_t size_bytes, absl::string_view sha256_hex);

  // Appends the next `chunk` (any size, may be empty) of the current file.
  // Errors: FAILED_PRECONDITION if no file has begun or the upload has finished or failed;
  // INVALID_ARGUMENT, naming the file, if the file would get more bytes than announced;
  // RESOURCE_EXHAUSTED, naming the file, when the disk is full or a quota or file-size limit is
  // reached; INTERNAL for other write failures.
  absl::Status Append(absl::string_view chunk);

  // Checks the last file in full and publishes the set as <root>/<id> with its manifest.
  // Errors: FAILED_PRECONDITION if the upload has finished or failed; INVALID_ARGUMENT, naming the
  // file, for an upload without files, a byte count other than announced, a SHA-256 mismatch
  // (naming both digests), a file that is not a usable feature file (bad magic or header, dtype
  // other than <f4/<f2, Fortran order, not 2-D, dim other than 256/768, no rows, a NaN or
  // infinite value: the message names the first bad row), or dims that differ between files;
  // RESOURCE_EXHAUSTED for a full disk; INTERNAL for other I/O failures.
  absl::StatusOr<FeatureSetInfo> Finish();

  // Bytes appended so far, over all files.
  int64_t bytes_received() const { return bytes_received_; }

 private:
  friend class FeatureSetStore;
  // Publishes the checked files in the staging directory under `manifest` (files in any order).
  using Publisher =
      absl::AnyInvocable<absl::StatusOr<FeatureSetInfo>(timbre::v1::FeatureSetManifest manifest)>;

  struct CurrentFile {
    std::string name;
    int64_t announced_bytes = 0;
    std::string announced_sha256;  // lowercase
    std::unique_ptr<OutputFile> file;
    Sha256 digest;
  };
  enum class State { kOpen, kFinished, kFailed };

  FeatureSetUpload(std::string staging_dir, int64_t max_upload_bytes, Publisher publish);

  // FAILED_PRECONDITION unless the upload is open.
  absl::Status CheckOpen() const;
  // Verifies, closes and validates the current file, adding it to manifest_.
  absl::Status CloseCurrentFile();
  // Ends the upload after an error: removes the staging directory; returns `status`.
  absl::Status Fail(absl::Status status);

  const std::string staging_dir_;
  const int64_t max_upload_bytes_;
  Publisher publish_;
  State state_ = State::kOpen;
  std::unique_ptr<CurrentFile> current_;
  int64_t announced_bytes_ = 0;  // sum over files begun
  int64_t bytes_received_ = 0;
  timbre::v1::FeatureSetManifest manifest_;  // the files checked so far
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_BUILD_FEATURE_SET_UPLOAD_H_
