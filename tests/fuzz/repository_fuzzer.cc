// The speaker repository's scanner given a hostile directory tree: directories, files, symlinks
// (to devices, parents, the root, each other) and FIFOs, named from a dictionary of the names the
// scanner looks for or from the input. The scan lists speakers and resolves each one's serving
// version without hanging (no FIFO or device is waited on or read without end), crashing or
// naming an index file outside the speaker's directory.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "server/serving/speaker_repository.h"
#include "tests/fuzz/fuzz_scratch.h"

namespace {

namespace fs = std::filesystem;

constexpr int kMaxOperations = 24;

const char* const kNames[] = {"alice", "bob", "1", "2", "10", "007", "metadata.json",
                              "index.faiss", "added_IVF1_Flat_x.index", "trained_IVF1_x.index",
                              ".staging-1", "-x", "vectors.f32"};
const char* const kLinkTargets[] = {"/dev/zero", "/dev/null", "..", "../..", "/", ".",
                                    "metadata.json", "1", "alice", "/proc/self/fd/0"};

// A name from the dictionary or from the input, never '.', '..' or holding '/' or NUL.
std::string Name(timbre::fuzz::FuzzInput& input) {
  const uint8_t pick = input.Byte();
  constexpr size_t kCount = sizeof(kNames) / sizeof(kNames[0]);
  if (pick < 200) return kNames[pick % kCount];
  std::string name = input.Bytes(32);
  std::string clean;
  for (char c : name) {
    if (c != '/' && c != '\0') clean.push_back(c);
  }
  if (clean.empty() || clean == "." || clean == "..") clean = "x";
  return clean;
}

// A path of one to three components under `root`.
std::string PathUnder(const std::string& root, timbre::fuzz::FuzzInput& input) {
  std::string path = root;
  const int depth = 1 + input.Byte() % 3;
  for (int i = 0; i < depth; ++i) path += "/" + Name(input);
  return path;
}

// True if no existing directory between `root` and `path` is a symlink, so that creating `path`
// cannot write outside `root` (the tree holds symlinks to "/", ".." and devices).
bool StaysInside(const std::string& root, const std::string& path) {
  fs::path walked(root);
  const fs::path relative = fs::path(path).parent_path().lexically_relative(root);
  for (const fs::path& part : relative) {
    walked /= part;
    std::error_code error;
    const fs::file_status status = fs::symlink_status(walked, error);
    if (fs::is_symlink(status) || (fs::exists(status) && !fs::is_directory(status))) return false;
  }
  return true;
}

void BuildTree(const std::string& root, timbre::fuzz::FuzzInput& input) {
  std::error_code error;
  for (int op = 0; op < kMaxOperations && !input.empty(); ++op) {
    const uint8_t kind = input.Byte() % 4;
    const std::string path = PathUnder(root, input);
    if (!StaysInside(root, path)) continue;
    std::error_code existing;
    if (fs::is_symlink(fs::symlink_status(path, existing))) continue;  // never write through one
    fs::create_directories(fs::path(path).parent_path(), error);
    switch (kind) {
      case 0:
        fs::create_directories(path, error);
        break;
      case 1:
        std::ofstream(path, std::ios::binary) << input.Bytes(256);
        break;
      case 2: {
        const uint8_t pick = input.Byte();
        constexpr size_t kCount = sizeof(kLinkTargets) / sizeof(kLinkTargets[0]);
        const std::string target = pick < 220 ? kLinkTargets[pick % kCount] : Name(input);
        if (symlink(target.c_str(), path.c_str()) != 0) {
          // An existing entry: left as it is.
        }
        break;
      }
      default:
        mkfifo(path.c_str(), 0600);
        break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  timbre::fuzz::FuzzScratch& scratch = timbre::fuzz::FuzzScratch::Get();
  scratch.Reset();
  const std::string root = scratch.Join("repo");
  fs::create_directories(root);
  timbre::fuzz::FuzzInput input(data, size);
  BuildTree(root, input);
  auto repository = timbre::SpeakerRepository::Create({root});
  if (!repository.ok()) std::abort();
  absl::StatusOr<std::vector<std::string>> speakers = (*repository)->ListSpeakers();
  if (!speakers.ok()) return 0;
  for (const std::string& speaker : *speakers) {
    absl::StatusOr<timbre::VersionSource> source = (*repository)->ResolveServingVersion(speaker);
    if (!source.ok()) continue;
    const fs::path index = fs::path(source->index_path).lexically_normal();
    const fs::path dir = (fs::path(root) / speaker).lexically_normal();
    const fs::path relative = index.lexically_relative(dir);
    if (relative.empty() || *relative.begin() == "..") std::abort();
  }
  return 0;
}
