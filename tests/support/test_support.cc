#include "tests/support/test_support.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "server/faiss/faiss_index.h"

namespace timbre::testing {

ScratchDir::ScratchDir() {
  const char* base = getenv("TMPDIR");
  std::string pattern = absl::StrCat(base != nullptr ? base : "/tmp", "/timbre-test-XXXXXX");
  char* made = mkdtemp(pattern.data());
  if (made == nullptr) {
    ADD_FAILURE() << "mkdtemp failed";
  }
  path_ = pattern;
}

ScratchDir::~ScratchDir() {
  std::error_code error;
  std::filesystem::remove_all(path_, error);
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out << contents;
  ASSERT_TRUE(out.good()) << "writing " << path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

std::string DataPath(const std::string& name) {
  const char* dir = getenv("TIMBRE_TEST_DATA");
  return absl::StrCat(dir != nullptr ? dir : "data", "/", name);
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code error;
  for (std::filesystem::directory_iterator it(dir, error), end; !error && it != end;
       it.increment(error)) {
    names.push_back(it->path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string NpyHeaderBytes(const std::string& dict) {
  std::string header = dict;
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  return out + header;
}

std::unique_ptr<FaissIndex> TrainOrDie(const std::string& description, Metric metric,
                                       const FrameMatrix& frames, int nprobe, int k_factor) {
  TrainOptions options;
  options.description = description;
  options.metric = metric;
  options.nprobe = nprobe;
  options.k_factor = k_factor;
  auto index = FaissIndex::Train(options, frames.values.data(), frames.rows, frames.dim);
  EXPECT_TRUE(index.ok()) << index.status();
  return index.ok() ? *std::move(index) : nullptr;
}

std::vector<float> QueriesNear(const FaissIndex& index, int count, float sigma, uint32_t seed) {
  std::mt19937 random(seed);
  std::normal_distribution<float> noise(0.0f, sigma);
  std::uniform_int_distribution<int64_t> pick(0, index.size() - 1);
  std::vector<float> queries;
  for (int i = 0; i < count; ++i) {
    const float* row = index.StoredVector(pick(random));
    for (int j = 0; j < index.dim(); ++j) queries.push_back(row[j] + noise(random));
  }
  return queries;
}

std::vector<float> SmallIntegers(int64_t count, int range, uint32_t seed) {
  std::mt19937 random(seed);
  std::uniform_int_distribution<int> value(-range, range);
  std::vector<float> values(count);
  for (float& x : values) x = value(random);
  return values;
}

void WriteRvcIndex(const FrameMatrix& frames, int nlist, const std::string& path) {
  std::unique_ptr<FaissIndex> index =
      TrainOrDie(absl::StrCat("IVF", nlist, ",Flat"), Metric::kL2, frames);
  ASSERT_NE(index, nullptr);
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  ASSERT_TRUE(index->Write(path).ok());
}

bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return condition();
}

std::vector<double> FakeBuildControl::fractions() const {
  std::vector<double> out;
  for (const Report& report : reports()) out.push_back(report.fraction);
  return out;
}

void FakeBuildControl::CancelAtReport(int reports) {
  absl::MutexLock lock(&mutex_);
  cancel_at_report_ = reports;
}

bool FakeBuildControl::cancelled() const {
  if (polls_left_.load() >= 0 && polls_left_.fetch_sub(1) <= 0) cancelled_ = true;
  return cancelled_;
}

void FakeBuildControl::Progress(double fraction, absl::string_view message) {
  absl::MutexLock lock(&mutex_);
  reports_.push_back({fraction, std::string(message)});
  if (static_cast<int>(reports_.size()) == cancel_at_report_) cancelled_ = true;
}

std::vector<FakeBuildControl::Report> FakeBuildControl::reports() const {
  absl::MutexLock lock(&mutex_);
  return reports_;
}

namespace {

// The full path of `program` in a directory of $PATH; empty if there is none.
std::string FindOnPath(const std::string& program) {
  const char* path = getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path != nullptr ? path : "", ':')) {
    if (dir.empty()) continue;
    const std::string candidate = absl::StrCat(dir, "/", program);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

}  // namespace

void ExpectPromtoolClean(const std::string& exposition) {
  const std::string promtool = FindOnPath("promtool");
  ASSERT_FALSE(promtool.empty())
      << "promtool is not on PATH; install Debian's 'prometheus' package "
         "(deploy/install-deps.sh installs it)";
  ScratchDir scratch;
  const std::string input = scratch.Join("metrics.txt");
  WriteFile(input, exposition);
  const std::string command =
      absl::StrCat("'", promtool, "' check metrics < '", input, "' 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr) << "cannot run " << command;
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  const int status = pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status)) << command << " did not exit";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "promtool check metrics: " << output;
  EXPECT_EQ(output, "") << "promtool check metrics complains";
}

}  // namespace timbre::testing
