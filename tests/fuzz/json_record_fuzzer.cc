// The JSON files timbre reads back from disk, with arbitrary contents: a version's metadata.json
// (through the speaker repository), a feature set's manifest.json, and a build job record
// (through the job queue's start-up). The first input byte picks the file; the rest is its text.
// Each is read or refused with a status; a job record that loads is in a final state (a job the
// server was running when it stopped is failed with the reason) and loads again the same.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "server/build/build_job_queue.h"
#include "server/build/feature_set_manifest.h"
#include "server/serving/speaker_repository.h"
#include "tests/fuzz/fuzz_scratch.h"
#include "tests/support/fake_build_runner.h"

namespace {

namespace fs = std::filesystem;

void WriteText(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

void Metadata(const std::string& root, const std::string& text) {
  WriteText(root + "/repo/alice/1/metadata.json", text);
  WriteText(root + "/repo/alice/1/index.faiss", "not read by the repository");
  auto repository = timbre::SpeakerRepository::Create({root + "/repo"});
  if (!repository.ok()) std::abort();
  absl::StatusOr<timbre::VersionSource> source = (*repository)->ResolveServingVersion("alice");
  if (source.ok()) {
    // The index file it names stays inside the version directory.
    const fs::path index = fs::path(source->index_path).lexically_normal();
    if (index.parent_path() != fs::path(root + "/repo/alice/1").lexically_normal()) std::abort();
  }
}

void Manifest(const std::string& root, const std::string& text) {
  WriteText(root + "/set/" + timbre::kFeatureManifestFileName, text);
  timbre::ReadFeatureManifest(root + "/set").status().IgnoreError();
}

size_t LoadJobs(const std::string& jobs_dir) {
  timbre::testing::FakeBuildRunner runner;
  timbre::BuildJobQueue::Options options;
  options.builder = &runner;
  options.jobs_dir = jobs_dir;
  auto queue = timbre::BuildJobQueue::Create(std::move(options));
  if (!queue.ok()) return 0;
  const std::vector<timbre::v1::BuildJob> jobs = (*queue)->List();
  for (const timbre::v1::BuildJob& job : jobs) {
    if (!timbre::IsFinalJobState(job.state())) std::abort();
  }
  return jobs.size();
}

void JobRecord(const std::string& root, const std::string& text) {
  const std::string jobs_dir = root + "/jobs";
  WriteText(jobs_dir + "/job-0123456789ab.json", text);
  const size_t first = LoadJobs(jobs_dir);
  if (LoadJobs(jobs_dir) != first) std::abort();  // a rewritten record reads back
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  timbre::fuzz::FuzzScratch& scratch = timbre::fuzz::FuzzScratch::Get();
  scratch.Reset();
  timbre::fuzz::FuzzInput input(data, size);
  const uint8_t which = input.Byte() % 3;
  const std::string text = input.Rest();
  switch (which) {
    case 0:
      Metadata(scratch.path(), text);
      break;
    case 1:
      Manifest(scratch.path(), text);
      break;
    default:
      JobRecord(scratch.path(), text);
      break;
  }
  return 0;
}
