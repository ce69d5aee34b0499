// Durable writes: the one way timbre replaces a file or publishes a directory, so that a crash or
// a full disk leaves either the old state or the new one, never a mix, and nothing half written.
//
// - ReplaceFileDurably writes a temporary file next to the target (named target + ".partial-"
//   and a unique suffix, IsPartialFileName), syncs it, renames it onto the target and syncs the
//   directory. The temporary is removed on any failure.
// - A directory is published in two steps: CreateStagingDirectory makes a hidden directory that
//   the caller fills; PublishStagedDirectory syncs everything in it and renames it to the first
//   free name among the caller's candidates (a version number, a random id). The staging
//   directory is removed when publishing fails.
//
// Errors carry the operating system's reason as ErrnoStatus (posix_file.h) builds them: a full
// disk RESOURCE_EXHAUSTED, a missing directory NOT_FOUND, anything else INTERNAL.
//
// Thread-safe: the functions hold no state. Concurrent replacements of one file leave one of
// them whole; concurrent publishes under one parent get distinct names.
#ifndef TIMBRE_SERVER_IO_DURABLE_WRITE_H_
#define TIMBRE_SERVER_IO_DURABLE_WRITE_H_

#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/io/posix_file.h"

namespace timbre {

// Replaces `path` (created if missing) with a file holding what `write` appends to the
// OutputFile it is given, mode 0644. `label` names the file in errors ("vectors file 'a.f32'");
// empty means the path in quotes. On error `path` is untouched and the temporary removed, except
// when only the final sync of the directory fails: the new file is then in place, but may not
// survive a crash. Errors: those of `write`; ErrnoStatus of creating, writing, syncing or renaming
// the temporary (NOT_FOUND for a missing directory, RESOURCE_EXHAUSTED for a full disk) or of
// syncing the directory.
absl::Status ReplaceFileDurablyWith(const std::string& path, std::string label,
                                    absl::FunctionRef<absl::Status(OutputFile& file)> write);

// ReplaceFileDurablyWith for a file holding `contents`.
absl::Status ReplaceFileDurably(const std::string& path, absl::string_view contents,
                                std::string label = "");

// True if `name` (a file name or path) is a temporary of ReplaceFileDurably: it holds
// ".partial-". A crash can leave one behind; they are safe to remove when no write runs.
bool IsPartialFileName(absl::string_view name);

// Prefix of the directories CreateStagingDirectory makes: hidden, so that no reader of the parent
// takes them for published ones.
inline constexpr char kStagingDirectoryPrefix[] = ".staging-";

// Makes a new empty directory in `parent` (which must exist), named kStagingDirectoryPrefix and
// 16 random hex digits, and returns its path ("<parent>/.staging-0123456789abcdef"). The caller
// fills it and then publishes it (PublishStagedDirectory) or removes it.
// Errors: ErrnoStatus of mkdir (NOT_FOUND for a missing parent, INTERNAL if it is a file).
absl::StatusOr<std::string> CreateStagingDirectory(const std::string& parent);

// Removes every directory CreateStagingDirectory made in `parent` and a crash left there, with
// everything in them; returns how many. Only for the one process that writes to `parent`, when
// no write of its own runs. A missing `parent` holds none. Errors: ErrnoStatus of reading
// `parent` or of removing a directory, naming it.
absl::StatusOr<int> RemoveStagingDirectories(const std::string& parent);

// Publishes `staging_dir` (filled, on the same file system as `parent`) as a directory of
// `parent`: fsyncs every file and directory in it and the directory itself, then renames it to
// "<parent>/<name>" for the first name from `next_name` that is free, calling `next_name` at most
// `max_candidates` times; a name already taken (by a file or directory, empty or not) is never
// replaced (renameat2 RENAME_NOREPLACE; a file system without it falls back to rename, which may
// replace an empty directory). Finally syncs `parent`; a failure of that last sync is ignored, since the directory is
// published and only its durability is delayed. Returns the name chosen.
// On any error nothing is published and `staging_dir` is removed with everything in it.
// Errors: INVALID_ARGUMENT for max_candidates < 1; ErrnoStatus of the syncs and the rename (e.g.
// NOT_FOUND for a missing parent, INTERNAL if it is a file); INTERNAL naming the parent and the
// last candidate when every candidate was taken.
absl::StatusOr<std::string> PublishStagedDirectory(const std::string& staging_dir,
                                                   const std::string& parent, int max_candidates,
                                                   absl::FunctionRef<std::string()> next_name);

}  // namespace timbre

#endif  // TIMBRE_SERVER_IO_DURABLE_WRITE_H_
