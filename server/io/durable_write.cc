#include "server/io/durable_write.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/io/random_id.h"

namespace timbre {
namespace {

namespace fs = std::filesystem;

// Staging directory names: kStagingDirectoryPrefix and 16 hex digits.
constexpr RandomIdForm kStagingDirectoryForm{"staging directory", kStagingDirectoryPrefix, 16};

// The directory holding `path`.
std::string DirectoryOf(const std::string& path) {
  const std::string parent = fs::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

// Renames `from` to `to` unless `to` exists (then EEXIST). Returns 0 or -1 with errno set.
int RenameNoReplace(const std::string& from, const std::string& to) {
  if (renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  // A file system without RENAME_NOREPLACE: a plain rename still refuses a non-empty directory.
  if (errno == EINVAL) return rename(from.c_str(), to.c_str());
  return -1;
}

// fsyncs every file and directory below `dir`, then `dir` itself.
absl::Status SyncTree(const std::string& dir) {
  std::error_code error;
  for (fs::recursive_directory_iterator it(dir, error), end; !error && it != end;
       it.increment(error)) {
    std::error_code type_error;
    const bool directory = it->is_directory(type_error);
    if (!directory && !it->is_regular_file(type_error)) continue;
    if (absl::Status synced = SyncPath(it->path().string(), directory); !synced.ok()) {
      return synced;
    }
  }
  if (error) return ErrnoStatus(error.value(), absl::StrCat("reading '", dir, "'"));
  return SyncPath(dir, true);
}

}  // namespace

absl::Status ReplaceFileDurablyWith(const std::string& path, std::string label,
                                    absl::FunctionRef<absl::Status(OutputFile& file)> write) {
  if (label.empty()) label = absl::StrCat("'", path, "'");
  absl::StatusOr<std::unique_ptr<OutputFile>> file = OutputFile::CreateTemporary(path, label);
  if (!file.ok()) return file.status();
  const std::string temporary = (*file)->path();
  absl::Status status = write(**file);
  if (status.ok()) status = (*file)->SyncAndClose();
  if (status.ok() && rename(temporary.c_str(), path.c_str()) != 0) {
    status = ErrnoStatus(errno, absl::StrCat("renaming ", label, " into place"));
  }
  if (!status.ok()) {
    file->reset();
    unlink(temporary.c_str());
    return status;
  }
  return SyncPath(DirectoryOf(path), true);
}

absl::Status ReplaceFileDurably(const std::string& path, absl::string_view contents,
                                std::string label) {
  return ReplaceFileDurablyWith(path, std::move(label),
                                [&](OutputFile& file) { return file.Append(contents); });
}

bool IsPartialFileName(absl::string_view name) { return absl::StrContains(name, ".partial-"); }

absl::StatusOr<std::string> CreateStagingDirectory(const std::string& parent) {
  const std::string dir = absl::StrCat(parent, "/", NewRandomId(kStagingDirectoryForm));
  if (mkdir(dir.c_str(), 0755) != 0) {
    return ErrnoStatus(errno, absl::StrCat("creating staging directory '", dir, "'"));
  }
  return dir;
}

absl::StatusOr<int> RemoveStagingDirectories(const std::string& parent) {
  std::error_code error;
  std::vector<std::filesystem::path> leftovers;
  for (std::filesystem::directory_iterator it(parent, error), end; !error && it != end;
       it.increment(error)) {
    if (absl::StartsWith(it->path().filename().string(), kStagingDirectoryPrefix)) {
      leftovers.push_back(it->path());
    }
  }
  if (error && error != std::errc::no_such_file_or_directory) {
    return ErrnoStatus(error.value(), absl::StrCat("reading '", parent, "'"));
  }
  for (const std::filesystem::path& leftover : leftovers) {
    std::filesystem::remove_all(leftover, error);
    if (error) return ErrnoStatus(error.value(), absl::StrCat("removing '", leftover.string(), "'"));
  }
  return static_cast<int>(leftovers.size());
}

absl::StatusOr<std::string> PublishStagedDirectory(const std::string& staging_dir,
                                                   const std::string& parent, int max_candidates,
                                                   absl::FunctionRef<std::string()> next_name) {
  auto publish = [&]() -> absl::StatusOr<std::string> {
    if (max_candidates < 1) {
      return absl::InvalidArgumentError(absl::StrCat("publishing '", staging_dir, "': ",
                                                     max_candidates, " candidate names"));
    }
    if (absl::Status synced = SyncTree(staging_dir); !synced.ok()) return synced;
    std::string name;
    for (int candidate = 0; candidate < max_candidates; ++candidate) {
      name = next_name();
      const std::string target = absl::StrCat(parent, "/", name);
      if (RenameNoReplace(staging_dir, target) == 0) {
        SyncPath(parent, true).IgnoreError();
        return name;
      }
      if (errno != EEXIST && errno != ENOTEMPTY) {
        return ErrnoStatus(errno,
                           absl::StrCat("renaming '", staging_dir, "' to '", target, "'"));
      }
    }
    return absl::InternalError(absl::StrCat("publishing '", staging_dir, "' in '", parent,
                                            "': every one of ", max_candidates,
                                            " candidate names was taken (the last '", name,
                                            "')"));
  };
  absl::StatusOr<std::string> name = publish();
  if (!name.ok()) {
    std::error_code ignored;
    fs::remove_all(staging_dir, ignored);
  }
  return name;
}

}  // namespace timbre
