// The upload stream: a sequence of chunk messages applied to a FeatureSetUpload as the
// UploadFeatures reactor applies them. The input is a list of operations:
//   0: a file header with a name from the input and the size and SHA-256 of contents from the
//      input, followed by those contents in chunks of sizes from the input (what a client does);
//   1: a file header with a name, size and digest string all from the input (a lying client);
//   2: a chunk of bytes from the input;
//   3: Finish.
// Whatever the sequence, the upload either publishes a set whose files pass the feature-file
// rules or fails; a failed or abandoned upload leaves no staging directory behind.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "server/build/feature_set_store.h"
#include "server/build/feature_set_upload.h"
#include "server/io/sha256.h"
#include "tests/fuzz/fuzz_scratch.h"

namespace {

constexpr int kMaxOperations = 16;

// Entries of the store's root other than published sets (fs-*): staging and deleting dirs.
int LeftOver(const std::string& root) {
  int count = 0;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(root, error)) {
    if (entry.path().filename().string().rfind("fs-", 0) != 0) ++count;
  }
  return count;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  timbre::fuzz::FuzzScratch& scratch = timbre::fuzz::FuzzScratch::Get();
  scratch.Reset();
  timbre::FeatureSetStore::Options options;
  options.root = scratch.Join("sets");
  options.max_upload_bytes = 1 << 20;
  auto store = timbre::FeatureSetStore::Create(options);
  if (!store.ok()) std::abort();
  auto upload = (*store)->BeginUpload();
  if (!upload.ok()) std::abort();
  timbre::fuzz::FuzzInput input(data, size);
  bool finished = false;
  for (int op = 0; op < kMaxOperations && !input.empty() && !finished; ++op) {
    switch (input.Byte() % 4) {
      case 0: {
        const std::string name = input.Bytes(64);
        const std::string contents = input.Bytes(1 << 16);
        timbre::Sha256 digest;
        digest.Update(contents);
        if (!(*upload)->BeginFile(name, static_cast<int64_t>(contents.size()), digest.HexDigest())
                 .ok()) {
          break;
        }
        size_t offset = 0;
        while (offset < contents.size()) {
          const size_t chunk = std::min<size_t>(contents.size() - offset, 1 + input.Byte() * 64);
          if (!(*upload)->Append(absl::string_view(contents).substr(offset, chunk)).ok()) break;
          offset += chunk;
        }
        break;
      }
      case 1: {
        const std::string name = input.Bytes(64);
        const int64_t announced = static_cast<int32_t>(input.Uint32());
        const std::string sha = input.Bytes(80);
        (*upload)->BeginFile(name, announced, sha).IgnoreError();
        break;
      }
      case 2:
        (*upload)->Append(input.Bytes(1 << 16)).IgnoreError();
        break;
      case 3: {
        absl::StatusOr<timbre::FeatureSetInfo> info = (*upload)->Finish();
        finished = true;
        if (info.ok() && (*store)->Get(info->id).status().code() != absl::StatusCode::kOk) {
          std::abort();  // published but not found
        }
        break;
      }
    }
  }
  upload->reset();  // an unfinished upload is abandoned
  if (LeftOver(options.root) != 0) std::abort();
  return 0;
}
