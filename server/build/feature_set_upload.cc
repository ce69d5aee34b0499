#include "server/build/feature_set_upload.h"

#include <filesystem>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/build/feature_file.h"
#include "server/build/feature_set_manifest.h"
#include "server/status/rejection.h"

namespace timbre {

FeatureSetUpload::FeatureSetUpload(std::string staging_dir, int64_t max_upload_bytes,
                                   Publisher publish)
    : staging_dir_(std::move(staging_dir)),
      max_upload_bytes_(max_upload_bytes),
      publish_(std::move(publish)) {}

FeatureSetUpload::~FeatureSetUpload() {
  if (state_ == State::kOpen) Fail(absl::CancelledError("upload abandoned")).IgnoreError();
}

absl::Status FeatureSetUpload::CheckOpen() const {
  switch (state_) {
    case State::kOpen:
      return absl::OkStatus();
    case State::kFinished:
      return absl::FailedPreconditionError("the upload has already finished");
    case State::kFailed:
      break;
  }
  return absl::FailedPreconditionError("the upload has already failed");
}

absl::Status FeatureSetUpload::Fail(absl::Status status) {
  current_.reset();
  std::error_code error;
  std::filesystem::remove_all(staging_dir_, error);
  state_ = State::kFailed;
  return status;
}

absl::Status FeatureSetUpload::BeginFile(absl::string_view name, int64_t size_bytes,
                                         absl::string_view sha256_hex) {
  if (absl::Status open = CheckOpen(); !open.ok()) return open;
  if (current_ != nullptr) {
    if (absl::Status closed = CloseCurrentFile(); !closed.ok()) return Fail(closed);
  }
  if (absl::Status valid = ValidateFeatureFileName(name); !valid.ok()) return Fail(valid);
  for (const timbre::v1::FeatureFileManifest& file : manifest_.files()) {
    if (file.name() == name) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("feature file '", name, "' was already uploaded; names must be unique")));
    }
  }
  if (size_bytes < 1) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("feature file '", name, "': announced size ", size_bytes, " bytes")));
  }
  const std::string sha256 = absl::AsciiStrToLower(sha256_hex);
  if (!Sha256::IsHexDigest(sha256)) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("feature file '", name, "': sha256 '", sha256_hex, "' is not 64 hex digits")));
  }
  if (size_bytes > max_upload_bytes_ - announced_bytes_) {
    return Fail(Rejected(absl::ResourceExhaustedError(absl::StrCat(
                             "feature file '", name, "': the upload would hold ",
                             announced_bytes_ + size_bytes, " bytes, more than the limit of ",
                             max_upload_bytes_)),
                         RejectionReason::kTooLarge));
  }
  auto file = OutputFile::Create(absl::StrCat(staging_dir_, "/", name),
                                 absl::StrCat("feature file '", name, "'"));
  if (!file.ok()) return Fail(file.status());
  current_ = std::make_unique<CurrentFile>();
  current_->name = std::string(name);
  current_->announced_bytes = size_bytes;
  current_->announced_sha256 = sha256;
  current_->file = *std::move(file);
  announced_bytes_ += size_bytes;
  return absl::OkStatus();
}

absl::Status FeatureSetUpload::Append(absl::string_view chunk) {
  if (absl::Status open = CheckOpen(); !open.ok()) return open;
  if (current_ == nullptr) {
    return Fail(absl::FailedPreconditionError("data arrived before any file was begun"));
  }
  const int64_t received = current_->file->size();
  if (static_cast<int64_t>(chunk.size()) > current_->announced_bytes - received) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("feature file '", current_->name, "': announced ", current_->announced_bytes,
                     " bytes, received at least ", received + static_cast<int64_t>(chunk.size()))));
  }
  if (absl::Status written = current_->file->Append(chunk); !written.ok()) return Fail(written);
  current_->digest.Update(chunk);
  bytes_received_ += static_cast<int64_t>(chunk.size());
  return absl::OkStatus();
}

absl::Status FeatureSetUpload::CloseCurrentFile() {
  std::unique_ptr<CurrentFile> current = std::move(current_);
  const std::string& name = current->name;
  if (current->file->size() != current->announced_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("feature file '", name, "': announced ",
                                                   current->announced_bytes, " bytes, received ",
                                                   current->file->size()));
  }
  if (absl::Status synced = current->file->SyncAndClose(); !synced.ok()) return synced;
  const std::string digest = current->digest.HexDigest();
  if (digest != current->announced_sha256) {
    return absl::InvalidArgumentError(
        absl::StrCat("feature file '", name, "': the received bytes have SHA-256 ", digest,
                     ", the client announced ", current->announced_sha256));
  }
  absl::StatusOr<timbre::v1::FeatureFileManifest> file =
      CheckFeatureFile(absl::StrCat(staging_dir_, "/", name), name, nullptr);
  if (!file.ok()) return file.status();
  file->set_name(name);
  file->set_sha256(digest);
  return AddFeatureFile(&manifest_, *std::move(file));
}

absl::StatusOr<FeatureSetInfo> FeatureSetUpload::Finish() {
  if (absl::Status open = CheckOpen(); !open.ok()) return open;
  if (current_ != nullptr) {
    if (absl::Status closed = CloseCurrentFile(); !closed.ok()) return Fail(closed);
  }
  if (manifest_.files().empty()) {
    return Fail(absl::InvalidArgumentError("the upload holds no feature files"));
  }
  absl::StatusOr<FeatureSetInfo> info = publish_(manifest_);
  if (!info.ok()) return Fail(info.status());
  state_ = State::kFinished;
  return info;
}

}  // namespace timbre
