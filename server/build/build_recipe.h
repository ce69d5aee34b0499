// BuildPlan: what a build recipe (timbre.v1.Recipe) means for a given feature set.
//
// PlanBuild turns a recipe and the size of a feature set into the concrete stages of the build:
// whether rows are compressed by k-means, normalised and query-expanded, and which indexes to
// train with which search settings. All validation that does not need the rows happens here, so a
// bad recipe is refused when the job is requested rather than minutes into it.
//
// The recipes (see build_job.proto):
//   rvc       IVF{RvcListCount(N)},Flat, L2, nprobe 1: RVC's train_index exactly.
//   fastscan  IVF{n},PQ{dim/2}x4fs,RFlat with n in [4*sqrt(N), 16*sqrt(N)] (default 8*sqrt(N)),
//             stored nprobe (default 4) and k_factor (default 4).
//   factory   any index_factory string, L2 or inner product.
//   auto      candidates: rvc at nprobe 1/2/4/8/16, IVF{4*sqrt(N)},Flat at nprobe 1..32,
//             IVF{sqrt(N)},Flat at nprobe 4..32, and fastscan at nprobe 4/8/16/32 with k_factor
//             4/8 (candidate_choice.h says which is kept).
// N is the number of rows indexed: after k-means compression, and without the held-out frames of
// the auto recipe. faiss wants about 39 training rows per inverted list; a plan that gives fewer is
// refused (explicit list counts) or clamped with a note (derived list counts).
//
// Thread-safe: pure functions.
#ifndef TIMBRE_SERVER_BUILD_BUILD_RECIPE_H_
#define TIMBRE_SERVER_BUILD_BUILD_RECIPE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/faiss/faiss_index.h"
#include "timbre/v1/build_job.pb.h"

namespace timbre {

// Training rows faiss wants per inverted list (it warns below this).
inline constexpr int64_t kRowsPerList = 39;

// RVC's number of inverted lists for n training rows: min(int(16 * sqrt(n)), n / 39), at least 1.
int RvcListCount(int64_t n);

// How one trained index is searched when it serves (0 = the index's stored value).
struct SearchSetting {
  int nprobe = 0;
  int k_factor = 0;
};

// One index to train, and the search settings to measure on it (auto) or to store (others:
// exactly one setting).
struct CandidateIndex {
  TrainOptions train;
  std::vector<SearchSetting> settings;
};

// On the target voice's held-out frames. A voice changer sends another voice's frames, which sat
// about 3x further from exact search on speech-like frames (1 - cosine 0.0017 against 0.0005 at
// nprobe 16, 0.0010 against 0.0003 at 24; README, "Speech-like frames"): 0.9997 here for 0.999
// there.
inline constexpr double kDefaultMinBlendCosine = 0.9997;

struct BuildPlan {
  timbre::v1::Recipe::Kind kind = timbre::v1::Recipe::KIND_UNSPECIFIED;
  uint32_t shuffle_seed = 0;
  // k-means compression: applied when compress is true.
  bool compress = false;
  int64_t kmeans_centroids = 0;
  int kmeans_iterations = 0;
  // Rows indexed (after compression; including held-out frames, which the final index has too).
  int64_t indexed_rows = 0;
  int dim = 0;
  // L2-normalise rows (cosine similarity with the inner-product metric).
  bool normalize = false;
  // Alpha query expansion of the database; neighbours == 0 means off.
  int expansion_neighbours = 0;
  float expansion_alpha = 3.0f;
  std::vector<CandidateIndex> candidates;  // exactly one unless kind == KIND_AUTO
  // auto only: fidelity target and frames held out of the candidates to measure them.
  double min_blend_cosine = kDefaultMinBlendCosine;
  // auto only: latency bound on a candidate's p50 call, ms; 0 = RVC's recipe searched
  // without the pruned steps, measured in the build (BuildReport.rvc_unpruned_p50_call_ms).
  double max_call_ms = 0.0;
  int64_t held_out_frames = 0;
  // Choices the planner made that the user should know about (clamped list counts).
  std::vector<std::string> notes;
};

// The recipe's name where it leaves the server as text (VersionMetadata.recipe): "rvc",
// "fastscan", "factory", "auto"; "unspecified" for any other value.
absl::string_view RecipeKindName(timbre::v1::Recipe::Kind kind);

// Plans a build of `rows` rows of `dim` values. `shuffle_seed` is used when the recipe sets none.
// Errors: INVALID_ARGUMENT naming the field for an unknown kind, a recipe combined with options it
// does not take (cosine or query expansion with rvc), a list count outside its range or with fewer
// than 39 rows per list, an odd dim for fastscan, too few rows, an empty factory string, or
// k-means settings that do not compress (centroids >= rows).
absl::StatusOr<BuildPlan> PlanBuild(const timbre::v1::Recipe& recipe, int64_t rows, int dim,
                                    uint32_t shuffle_seed);

}  // namespace timbre

#endif  // TIMBRE_SERVER_BUILD_BUILD_RECIPE_H_
