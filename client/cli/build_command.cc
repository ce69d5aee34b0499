// timbre build: builds and publishes a new index version of a speaker from a feature set (or
// uploads one first), follows it live, then waits until the replicas serve it.
#include <algorithm>
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/strings/str_split.h"
#include "client/cli/build_commands.h"
#include "client/cli/cli_flags.h"
#include "client/cli/command.h"
#include "client/cli/command_status.h"

namespace timbre {
namespace {

v1::BuildIndexRequest BuildRequestFromFlags(const std::string& feature_set_id) {
  v1::BuildIndexRequest request;
  request.set_speaker(absl::GetFlag(FLAGS_speaker));
  request.set_feature_set_id(feature_set_id);
  request.set_comment(absl::GetFlag(FLAGS_comment));
  v1::Recipe& recipe = *request.mutable_recipe();
  recipe = RecipeNamed(absl::GetFlag(FLAGS_recipe));
  recipe.set_inner_product(absl::GetFlag(FLAGS_inner_product));
  recipe.set_nlist(static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_nlist))));
  recipe.set_nprobe(static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_nprobe))));
  recipe.set_k_factor(static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_k_factor))));
  recipe.set_cosine(absl::GetFlag(FLAGS_cosine));
  recipe.mutable_query_expansion()->set_neighbours(
      static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_qe_neighbours))));
  recipe.mutable_query_expansion()->set_alpha(static_cast<float>(absl::GetFlag(FLAGS_qe_alpha)));
  recipe.mutable_kmeans()->set_disabled(absl::GetFlag(FLAGS_no_kmeans));
  recipe.mutable_kmeans()->set_above_rows(
      static_cast<uint64_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_kmeans_above))));
  recipe.mutable_kmeans()->set_centroids(
      static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_kmeans_centroids))));
  if (absl::GetFlag(FLAGS_seed) >= 0) {
    recipe.set_shuffle_seed(static_cast<uint32_t>(absl::GetFlag(FLAGS_seed)));
  }
  recipe.set_min_blend_cosine(absl::GetFlag(FLAGS_min_blend_cosine));
  recipe.set_max_call_ms(absl::GetFlag(FLAGS_max_call_ms));
  return request;
}

// The server and each of --wait_replicas, with the connection's other options.
VersionWaitOptions WaitFromFlags(const TimbreClient::Options& connection) {
  VersionWaitOptions wait;
  wait.timeout = absl::GetFlag(FLAGS_wait_timeout);
  wait.targets.push_back(connection);
  for (absl::string_view replica :
       absl::StrSplit(absl::GetFlag(FLAGS_wait_replicas), ',', absl::SkipEmpty())) {
    wait.targets.push_back(connection);
    wait.targets.back().target = std::string(replica);
  }
  return wait;
}

int RunBuild(const CommandContext& context) {
  const std::string input = absl::GetFlag(FLAGS_input);
  std::string feature_set_id = absl::GetFlag(FLAGS_features);
  if (feature_set_id.empty() == input.empty()) {
    return Fail(kExitUsage, absl::InvalidArgumentError(
                                "build needs exactly one of --features=ID and --input=DIR|FILE"));
  }
  if (!input.empty()) {
    auto uploaded = context.builder.Upload(input, ChunkBytesFromFlags(), [](int64_t, int64_t) {});
    if (!uploaded.ok()) return Fail(kExitFailed, uploaded.status());
    std::printf("uploaded feature set %s (%llu rows of dim %u)\n", uploaded->id().c_str(),
                static_cast<unsigned long long>(uploaded->rows()), uploaded->dim());
    feature_set_id = uploaded->id();
  }
  const VersionWaitOptions wait = WaitFromFlags(context.connection);
  return BuildCommand(context.builder, BuildRequestFromFlags(feature_set_id),
                      absl::GetFlag(FLAGS_detach),
                      absl::GetFlag(FLAGS_wait_serving) ? &wait : nullptr);
}

}  // namespace

extern const Command kBuildCommand = {
    "build",
    "build and publish a new index version of a speaker, live, then wait for the replicas",
    "timbre build --speaker=NAME (--features=ID | --input=DIR|FILE.npy) "
    "[--recipe=rvc|fastscan|auto|FACTORY] [flags]",
    {"speaker", "features", "input", "chunk_mb", "recipe", "nlist", "nprobe", "k_factor",
     "cosine", "inner_product", "qe_neighbours", "qe_alpha", "kmeans_above", "kmeans_centroids",
     "no_kmeans", "seed", "min_blend_cosine", "max_call_ms", "comment", "detach", "wait_serving",
     "wait_replicas", "wait_timeout"},
    {"speaker"},
    {"timbre build --speaker=alice --input=logs/alice/3_feature768 --recipe=rvc",
     "timbre build --speaker=alice --features=fs-0123456789abcdef --recipe=auto   # try several, "
     "keep the fastest faithful one",
     "timbre build --speaker=alice --features=fs-0123456789abcdef "
     "--recipe=IVF1024,PQ128x4fs,RFlat --detach",
     "timbre build --speaker=alice --input=DIR --wait_replicas=10.0.0.2:50051,10.0.0.3:50051"},
    RunBuild};

}  // namespace timbre
