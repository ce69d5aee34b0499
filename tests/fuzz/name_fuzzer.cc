// Names a client sends that reach the file system: speaker names, feature-set ids, job ids and
// uploaded file names. Whatever a validator accepts is one plain, non-hidden path component, so no
// accepted name can reach outside its directory.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/string_view.h"
#include "server/build/feature_file.h"
#include "server/io/random_id.h"
#include "server/serving/speaker_name.h"

namespace {

void CheckPlainComponent(const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name[0] == '.' ||
      name.find('/') != std::string::npos || name.find('\0') != std::string::npos) {
    std::abort();
  }
  const std::filesystem::path root("/repo");
  const std::filesystem::path joined = (root / name).lexically_normal();
  if (joined.parent_path() != root) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string name(reinterpret_cast<const char*>(data), size);
  if (timbre::ValidateSpeakerName(name).ok()) {
    CheckPlainComponent(name);
    if (name.size() > static_cast<size_t>(timbre::kMaxSpeakerNameLength) || name[0] == '-') {
      std::abort();
    }
  }
  if (timbre::ValidateRandomId(timbre::kFeatureSetIdForm, name).ok()) CheckPlainComponent(name);
  if (timbre::ValidateRandomId(timbre::kJobIdForm, name).ok()) CheckPlainComponent(name);
  if (timbre::ValidateFeatureFileName(name).ok()) CheckPlainComponent(name);
  return 0;
}
