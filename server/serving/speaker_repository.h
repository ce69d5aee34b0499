// SpeakerRepository: the on-disk layout of speakers, read and published.
//
// Layout of a repository root:
//   <root>/<speaker>/                     one directory per speaker (see speaker_name.h)
//   <root>/<speaker>/<N>/                 a published version, N a decimal number; the highest
//                                         serves. Holds metadata.json (VersionMetadata as JSON)
//                                         and the index file it names (default index.faiss).
//   <root>/<speaker>/added_*.index        an RVC index file copied in as it is; used when the
//                                         speaker has no numbered version. Any other *.index
//                                         name works too, except trained_*.index (no vectors).
//   <root>/<speaker>/.<anything>          hidden: staging areas and temporary files, never read.
// A version is published atomically: written and synced in a hidden staging directory, then
// renamed to its number, so a reader sees either the whole version or none of it.
//
// Thread-safe: holds no mutable state; concurrent publishes of one speaker get distinct numbers.
#ifndef TIMBRE_SERVER_SERVING_SPEAKER_REPOSITORY_H_
#define TIMBRE_SERVER_SERVING_SPEAKER_REPOSITORY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "timbre/v1/version_metadata.pb.h"

namespace timbre {

inline constexpr char kMetadataFileName[] = "metadata.json";
inline constexpr char kDefaultIndexFileName[] = "index.faiss";

// The version of a speaker that should serve, as found on disk.
struct VersionSource {
  std::string version;     // "7" for a numbered version, the file name for an RVC file
  std::string index_path;  // absolute or root-relative path of the index file
  // Changes whenever the files of this version change (name, size, modification time).
  std::string fingerprint;
  timbre::v1::VersionMetadata metadata;  // empty for an RVC file
  // True for a numbered (atomically published) version, false for an RVC file.
  bool numbered = false;
};

class SpeakerRepository {
 public:
  struct Options {
    // Directory holding one subdirectory per speaker. Required; must exist.
    std::string root;
  };

  // Errors: INVALID_ARGUMENT if `root` is empty, NOT_FOUND if it is not a directory.
  static absl::StatusOr<std::unique_ptr<SpeakerRepository>> Create(Options options);

  const std::string& root() const { return options_.root; }

  // Valid speaker names with a directory under root, sorted. Hidden entries, files and
  // directories with invalid names are skipped. Errors: INTERNAL if root cannot be read.
  absl::StatusOr<std::vector<std::string>> ListSpeakers() const;

  // The version that should serve `speaker`, by the layout rules above.
  // Errors: INVALID_ARGUMENT for an invalid name; NOT_FOUND if the speaker has no directory;
  // FAILED_PRECONDITION, naming the files, when the directory holds no usable version (only a
  // trained_ file, several candidate index files, a version with bad metadata).
  absl::StatusOr<VersionSource> ResolveServingVersion(absl::string_view speaker) const;

  // Publishes a new numbered version of `speaker` (created if absent). `write_files` writes the
  // index file named by metadata.index_file (default index.faiss) into the directory it is given;
  // PublishVersion then writes metadata.json and publishes the directory under the next free
  // number (PublishStagedDirectory, durable_write.h: every file synced, then renamed).
  // Returns the new version number. On any error nothing is published and the staging directory
  // is removed. Errors: those of write_files; for I/O failures, those of durable_write.h with the
  // OS reason (RESOURCE_EXHAUSTED for a full disk, INTERNAL for most others).
  absl::StatusOr<std::string> PublishVersion(
      absl::string_view speaker, timbre::v1::VersionMetadata metadata,
      absl::FunctionRef<absl::Status(const std::string& staging_dir)> write_files) const;

  // Removes the staging directories a crash left in speakers' directories (a publish in progress
  // when the process died) and returns how many. Only for the one process that publishes to the
  // repository, before it publishes: another publisher's staging directory would go too.
  // Errors: ListSpeakers' (INTERNAL if the root cannot be read); ErrnoStatus naming a directory
  // that cannot be removed.
  absl::StatusOr<int> RemoveStagingLeftovers() const;

 private:
  explicit SpeakerRepository(Options options) : options_(std::move(options)) {}

  Options options_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_SERVING_SPEAKER_REPOSITORY_H_
