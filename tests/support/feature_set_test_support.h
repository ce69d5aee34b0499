// Helpers of the feature-set tests: feature files as numpy writes them, uploads, a build control
// that records progress, and a fixture with a store over scratch directories.
#ifndef TIMBRE_TESTS_SUPPORT_FEATURE_SET_TEST_SUPPORT_H_
#define TIMBRE_TESTS_SUPPORT_FEATURE_SET_TEST_SUPPORT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "server/build/feature_set_store.h"
#include "server/faiss/build_control.h"
#include "server/io/frame_codec.h"
#include "tests/support/test_support.h"

namespace timbre::testing {

// [rows, dim] values that float16 holds exactly, distinct per row and column group:
// base + row % 64 + (column % 16) / 4.
std::vector<float> RowValues(int64_t rows, int dim, float base);

// The bytes of a .npy file of `values` shaped [rows, dim], as numpy writes it.
std::string NpyBytes(DType dtype, int64_t rows, int dim, const std::vector<float>& values);

// NpyBytes of float32 RowValues(rows, dim, base).
std::string Float32Npy(int64_t rows, int dim, float base);

struct NamedFile {
  std::string name;
  std::string bytes;
};

// Uploads `files` in chunks of `chunk` bytes, announcing their true sizes and digests; returns
// the first error or what Finish() returns.
absl::StatusOr<FeatureSetInfo> Upload(FeatureSetStore& store, const std::vector<NamedFile>& files,
                                      size_t chunk = 1 << 16);

// Names of the hidden entries (staging and deleting directories) of a store root.
std::vector<std::string> HiddenEntries(const std::string& root);

// A feature file that breaks a rule, and what the error must say about it.
struct BadFeatureFile {
  std::string what;
  std::string bytes;
  std::vector<std::string> message_parts;
};

// One file for every rule: bad magic or header, dtype, order, shape, dim, rows, size, values.
std::vector<BadFeatureFile> BadFeatureFiles();

// Records progress and cancels after a given number of reports. The vectors are for reading
// after the call: the store reports from the calling thread.
class RecordingControl : public BuildControl {
 public:
  explicit RecordingControl(int cancel_after_reports = -1)
      : cancel_after_reports_(cancel_after_reports) {}

  bool cancelled() const override { return cancelled_; }
  void Progress(double fraction, absl::string_view message) override;
  void Cancel() { cancelled_ = true; }

  std::vector<double> fractions;
  std::vector<std::string> messages;

 private:
  const int cancel_after_reports_;
  std::atomic<bool> cancelled_{false};
};

// A store in a scratch directory whose import root is another scratch directory.
class FeatureSetStoreFixture : public ::testing::Test {
 protected:
  void SetUp() override;

  // A new store on root() and the import root.
  std::unique_ptr<FeatureSetStore> Open();
  std::string root() const { return dir_.Join("sets"); }
  // The absolute path, symlinks resolved, of `relative` under the import root.
  std::string ImportPath(const std::string& relative) const;

  // Expects that uploading `files` fails with `code` and a message holding each of `parts`, and
  // that nothing was left behind.
  void ExpectUploadFails(const std::vector<NamedFile>& files, absl::StatusCode code,
                         const std::vector<std::string>& parts);

  ScratchDir dir_;
  ScratchDir imports_;
  std::unique_ptr<FeatureSetStore> store_;
};

}  // namespace timbre::testing

#endif  // TIMBRE_TESTS_SUPPORT_FEATURE_SET_TEST_SUPPORT_H_
