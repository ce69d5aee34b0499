#include "server/serving/speaker_repository.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/io/durable_write.h"
#include "server/io/json_proto_file.h"
#include "server/serving/speaker_name.h"

namespace timbre {
namespace {

namespace fs = std::filesystem;

bool IsVersionNumber(const std::string& name, uint64_t* number) {
  // Decimal without leading zeros, so that the name is the number's canonical spelling.
  if (name.empty() || name.size() > 18 || (name.size() > 1 && name[0] == '0')) return false;
  if (!std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  return absl::SimpleAtoi(name, number);
}

std::string Fingerprint(const fs::path& path) {
  std::error_code error;
  const auto size = fs::file_size(path, error);
  const auto mtime = fs::last_write_time(path, error);
  return absl::StrCat(path.string(), ":", error ? 0 : size, ":",
                      error ? 0 : mtime.time_since_epoch().count());
}

absl::StatusOr<timbre::v1::VersionMetadata> ReadMetadata(const fs::path& path) {
  timbre::v1::VersionMetadata metadata;
  if (absl::Status read = ReadJsonProtoFile(path.string(), "metadata", &metadata); !read.ok()) {
    return read;
  }
  if (metadata.index_file().empty()) metadata.set_index_file(kDefaultIndexFileName);
  const std::string& file = metadata.index_file();
  if (file.find('/') != std::string::npos || file == "." || file == ".." ||
      absl::StartsWith(file, ".")) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", path.string(), "' names index_file '", file, "'; it must be a plain file name"));
  }
  return metadata;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SpeakerRepository>> SpeakerRepository::Create(Options options) {
  if (options.root.empty()) return absl::InvalidArgumentError("repository root is empty");
  std::error_code error;
  if (!fs::is_directory(options.root, error)) {
    return absl::NotFoundError(
        absl::StrCat("repository root '", options.root, "' is not a directory"));
  }
  return std::unique_ptr<SpeakerRepository>(new SpeakerRepository(std::move(options)));
}

absl::StatusOr<std::vector<std::string>> SpeakerRepository::ListSpeakers() const {
  std::vector<std::string> names;
  std::error_code error;
  for (fs::directory_iterator it(options_.root, error), end; !error && it != end;
       it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (!ValidateSpeakerName(name).ok()) continue;
    std::error_code type_error;
    if (!it->is_directory(type_error)) continue;
    names.push_back(name);
  }
  if (error) {
    return absl::InternalError(
        absl::StrCat("reading repository '", options_.root, "': ", error.message()));
  }
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<VersionSource> SpeakerRepository::ResolveServingVersion(
    absl::string_view speaker) const {
  if (absl::Status valid = ValidateSpeakerName(speaker); !valid.ok()) return valid;
  const fs::path dir = fs::path(options_.root) / std::string(speaker);
  std::error_code error;
  if (!fs::is_directory(dir, error)) {
    return absl::NotFoundError(absl::StrCat("speaker '", speaker, "' not found"));
  }
  uint64_t best_version = 0;
  bool have_version = false;
  std::vector<std::string> index_files;
  std::vector<std::string> trained_files;
  for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (absl::StartsWith(name, ".")) continue;
    std::error_code type_error;
    uint64_t number;
    if (it->is_directory(type_error) && IsVersionNumber(name, &number)) {
      if (!have_version || number > best_version) best_version = number;
      have_version = true;
    } else if (it->is_regular_file(type_error) && absl::EndsWith(name, ".index")) {
      (absl::StartsWith(name, "trained_") ? trained_files : index_files).push_back(name);
    }
  }
  if (error) {
    return absl::InternalError(absl::StrCat("reading '", dir.string(), "': ", error.message()));
  }
  VersionSource source;
  if (have_version) {
    const std::string version = std::to_string(best_version);
    const fs::path version_dir = dir / version;
    auto metadata = ReadMetadata(version_dir / kMetadataFileName);
    if (!metadata.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("version ", version, ": ", metadata.status().message()));
    }
    source.version = version;
    source.numbered = true;
    source.metadata = *std::move(metadata);
    source.index_path = (version_dir / source.metadata.index_file()).string();
    source.fingerprint = absl::StrCat(Fingerprint(version_dir / kMetadataFileName), "|",
                                      Fingerprint(source.index_path));
    return source;
  }
  std::sort(index_files.begin(), index_files.end());
  if (index_files.size() == 1) {
    source.version = index_files[0];
    source.index_path = (dir / index_files[0]).string();
    source.fingerprint = Fingerprint(source.index_path);
    return source;
  }
  if (index_files.size() > 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("speaker '", speaker, "' has ", index_files.size(), " index files (",
                     absl::StrJoin(index_files, ", "), "); keep exactly one"));
  }
  if (!trained_files.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "speaker '", speaker, "' has only ", absl::StrJoin(trained_files, ", "),
        ", which holds no vectors; copy RVC's added_*.index file instead"));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "speaker '", speaker, "' has no index: expected a numbered version directory or an RVC "
      "added_*.index file"));
}

absl::StatusOr<int> SpeakerRepository::RemoveStagingLeftovers() const {
  absl::StatusOr<std::vector<std::string>> speakers = ListSpeakers();
  if (!speakers.ok()) return speakers.status();
  int removed = 0;
  for (const std::string& speaker : *speakers) {
    absl::StatusOr<int> here = RemoveStagingDirectories((fs::path(options_.root) / speaker).string());
    if (!here.ok()) return here.status();
    removed += *here;
  }
  return removed;
}

absl::StatusOr<std::string> SpeakerRepository::PublishVersion(
    absl::string_view speaker, timbre::v1::VersionMetadata metadata,
    absl::FunctionRef<absl::Status(const std::string& staging_dir)> write_files) const {
  if (absl::Status valid = ValidateSpeakerName(speaker); !valid.ok()) return valid;
  if (metadata.index_file().empty()) metadata.set_index_file(kDefaultIndexFileName);
  if (metadata.format() == 0) metadata.set_format(1);
  if (metadata.created_at().empty()) {
    metadata.set_created_at(absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone()));
  }
  const fs::path dir = fs::path(options_.root) / std::string(speaker);
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) {
    return absl::InternalError(absl::StrCat("creating '", dir.string(), "': ", error.message()));
  }
  absl::StatusOr<std::string> staging = CreateStagingDirectory(dir.string());
  if (!staging.ok()) return staging.status();
  auto publish = [&]() -> absl::StatusOr<std::string> {
    if (absl::Status written = write_files(*staging); !written.ok()) return written;
    const fs::path index_path = fs::path(*staging) / metadata.index_file();
    if (!fs::is_regular_file(index_path, error)) {
      return absl::InternalError(absl::StrCat("publishing speaker '", speaker, "': no index file '",
                                              metadata.index_file(), "' was written"));
    }
    const fs::path metadata_path = fs::path(*staging) / kMetadataFileName;
    if (absl::Status written = WriteJsonProtoFile(metadata_path.string(), metadata);
        !written.ok()) {
      return written;
    }
    // Next number after the highest present; the next one if a concurrent publish took it.
    return PublishStagedDirectory(*staging, dir.string(), 100, [&] {
      uint64_t next = 1;
      for (fs::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
        uint64_t number;
        if (IsVersionNumber(it->path().filename().string(), &number)) {
          next = std::max(next, number + 1);
        }
      }
      return std::to_string(next);
    });
  };
  absl::StatusOr<std::string> version = publish();
  if (!version.ok()) fs::remove_all(*staging, error);
  return version;
}

}  // namespace timbre
