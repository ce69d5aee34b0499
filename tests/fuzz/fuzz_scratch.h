// Shared by the libFuzzer targets: a scratch directory for the process and the bytes of an input
// written to a file in it, for the parsers that read files.
#ifndef TIMBRE_TESTS_FUZZ_FUZZ_SCRATCH_H_
#define TIMBRE_TESTS_FUZZ_FUZZ_SCRATCH_H_

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <stdlib.h>

namespace timbre::fuzz {

// A directory of this process under $TMPDIR (or /tmp), created on first use and emptied by
// Reset(); removed when the process exits normally.
class FuzzScratch {
 public:
  static FuzzScratch& Get() {
    static FuzzScratch* scratch = new FuzzScratch();
    return *scratch;
  }
  const std::string& path() const { return path_; }
  std::string Join(const std::string& name) const { return path_ + "/" + name; }
  // Removes everything in the directory (symlinks themselves, never their targets).
  void Reset() {
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(path_, error)) {
      std::filesystem::remove_all(entry.path(), error);
    }
  }
  // Writes `size` bytes to `name` in the directory and returns its path.
  std::string WriteFile(const std::string& name, const uint8_t* data, size_t size) const {
    const std::string file = Join(name);
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    return file;
  }

 private:
  FuzzScratch() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp ? tmp : "/tmp") + "/timbre-fuzz-XXXXXX";
    path_ = mkdtemp(pattern.data()) != nullptr ? pattern : std::string();
    if (path_.empty()) std::abort();
    std::atexit([] {
      std::error_code error;
      std::filesystem::remove_all(Get().path_, error);
    });
  }
  std::string path_;
};

// Reads the fuzz input front to back: fixed-size values and length-prefixed byte strings.
class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return size_ == 0; }
  uint8_t Byte() {
    if (size_ == 0) return 0;
    --size_;
    return *data_++;
  }
  uint32_t Uint32() {
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i) value = (value << 8) | Byte();
    return value;
  }
  // Up to `max` bytes: a length byte pair, then that many bytes (fewer at the end of the input).
  std::string Bytes(size_t max) {
    size_t length = (static_cast<size_t>(Byte()) << 8) | Byte();
    length = std::min({length, max, size_});
    std::string out(reinterpret_cast<const char*>(data_), length);
    data_ += length;
    size_ -= length;
    return out;
  }
  // Everything left.
  std::string Rest() {
    std::string out(reinterpret_cast<const char*>(data_), size_);
    data_ += size_;
    size_ = 0;
    return out;
  }

 private:
  const uint8_t* data_;
  size_t size_;
};

}  // namespace timbre::fuzz

#endif  // TIMBRE_TESTS_FUZZ_FUZZ_SCRATCH_H_
