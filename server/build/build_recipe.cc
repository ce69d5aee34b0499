#include "server/build/build_recipe.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace timbre {
namespace {

using timbre::v1::Recipe;

constexpr int64_t kDefaultCompressAbove = 200000;  // RVC
constexpr int64_t kDefaultCentroids = 10000;       // RVC
constexpr int kDefaultIterations = 10;
constexpr int kDefaultFastScanNprobe = 4;
constexpr int kDefaultKFactor = 4;
constexpr float kDefaultAlpha = 3.0f;
constexpr int64_t kMaxHeldOut = 1000;
constexpr int64_t kMinHeldOut = 16;
// 4-bit PQ trains 16 centroids per sub-quantizer.
constexpr int64_t kMinPqRows = 16 * kRowsPerList;

int64_t RootTimes(double factor, int64_t n) {
  return static_cast<int64_t>(factor * std::sqrt(static_cast<double>(n)));
}

// The largest list count that leaves kRowsPerList training rows per list, at least 1.
int64_t MaxLists(int64_t rows) { return std::max<int64_t>(1, rows / kRowsPerList); }

// factor * sqrt(rows) lists, at least 1 and at most MaxLists(rows).
int64_t RootListCount(double factor, int64_t rows) {
  return std::min(std::max<int64_t>(1, RootTimes(factor, rows)), MaxLists(rows));
}

std::string FastScanDescription(int64_t nlist, int dim) {
  return absl::StrCat("IVF", nlist, ",PQ", dim / 2, "x4fs,RFlat");
}

// The list count of an "IVF<n>..." factory string, or 0 if it has none.
int64_t FactoryListCount(const std::string& factory) {
  for (absl::string_view part : absl::StrSplit(factory, ',')) {
    if (!absl::ConsumePrefix(&part, "IVF")) continue;
    const size_t digits = part.find_first_not_of("0123456789");
    int64_t nlist = 0;
    if (absl::SimpleAtoi(part.substr(0, digits), &nlist)) return nlist;
  }
  return 0;
}

absl::Status CheckListRows(int64_t nlist, int64_t rows, absl::string_view what) {
  if (nlist * kRowsPerList > rows) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " has ", nlist, " inverted lists but only ", rows,
        " rows to train on; faiss wants about ", kRowsPerList, " training rows per list (",
        nlist * kRowsPerList, " rows), so use at most ", MaxLists(rows), " lists"));
  }
  return absl::OkStatus();
}

// The fastscan list count for n rows: the requested one (checked) or 8*sqrt(n), clamped.
absl::StatusOr<int64_t> FastScanLists(uint32_t requested, int64_t rows, BuildPlan* plan) {
  if (requested != 0) {
    const int64_t low = RootTimes(4, rows), high = RootTimes(16, rows);
    if (requested < low || requested > high) {
      return absl::InvalidArgumentError(absl::StrCat(
          "recipe.nlist ", requested, " is outside [4*sqrt(N), 16*sqrt(N)] = [", low, ", ", high,
          "] for N = ", rows, " rows"));
    }
    if (absl::Status rows_ok = CheckListRows(requested, rows, "recipe.nlist"); !rows_ok.ok()) {
      return rows_ok;
    }
    return requested;
  }
  const int64_t wanted = std::max<int64_t>(1, RootTimes(8, rows));
  if (wanted > MaxLists(rows)) {
    plan->notes.push_back(absl::StrCat("fastscan: 8*sqrt(N) = ", wanted, " lists leave fewer than ",
                                       kRowsPerList, " rows per list; using ", MaxLists(rows)));
    return MaxLists(rows);
  }
  return wanted;
}

// Dimensions of auto's projected candidate: a sixth of dim rounded up to a multiple of 32
// (768 -> 128, 256 -> 64); 0 (no such candidate) below 128 dimensions.
int ProjectedDims(int dim) {
  if (dim < 128) return 0;
  return (dim / 6 + 31) / 32 * 32;
}

bool IsRefined(const std::string& description) {
  return absl::StrContains(description, "RFlat") || absl::StrContains(description, "Refine");
}

CandidateIndex Candidate(std::string description, Metric metric,
                         std::vector<SearchSetting> settings) {
  if (!IsRefined(description)) {
    for (SearchSetting& setting : settings) setting.k_factor = 0;
  }
  CandidateIndex candidate;
  candidate.train.description = std::move(description);
  candidate.train.metric = metric;
  candidate.train.nprobe = settings.front().nprobe;
  candidate.train.k_factor = settings.front().k_factor;
  candidate.settings = std::move(settings);
  return candidate;
}

absl::Status PlanPreprocessing(const Recipe& recipe, int64_t rows, BuildPlan* plan) {
  const auto& kmeans = recipe.kmeans();
  const int64_t above = kmeans.above_rows() != 0 ? kmeans.above_rows() : kDefaultCompressAbove;
  plan->kmeans_centroids = kmeans.centroids() != 0 ? kmeans.centroids() : kDefaultCentroids;
  plan->kmeans_iterations = kmeans.iterations() != 0 ? kmeans.iterations() : kDefaultIterations;
  plan->compress = !kmeans.disabled() && rows > above;
  if (plan->compress && plan->kmeans_centroids >= rows) {
    return absl::InvalidArgumentError(absl::StrCat(
        "recipe.kmeans.centroids ", plan->kmeans_centroids, " does not compress ", rows, " rows"));
  }
  plan->indexed_rows = plan->compress ? plan->kmeans_centroids : rows;

  const auto& expansion = recipe.query_expansion();
  plan->expansion_neighbours = static_cast<int>(expansion.neighbours());
  plan->expansion_alpha = expansion.alpha() != 0 ? expansion.alpha() : kDefaultAlpha;
  if (!std::isfinite(plan->expansion_alpha) || plan->expansion_alpha < 0) {
    return absl::InvalidArgumentError(absl::StrCat("recipe.query_expansion.alpha ",
                                                   expansion.alpha(), " must be finite and >= 0"));
  }
  if (plan->expansion_neighbours > plan->indexed_rows) {
    return absl::InvalidArgumentError(
        absl::StrCat("recipe.query_expansion.neighbours ", plan->expansion_neighbours,
                     " exceeds the ", plan->indexed_rows, " rows indexed"));
  }
  plan->normalize = recipe.cosine() || plan->expansion_neighbours > 0;
  return absl::OkStatus();
}

absl::Status PlanAuto(const Recipe& recipe, BuildPlan* plan) {
  plan->min_blend_cosine =
      recipe.min_blend_cosine() != 0 ? recipe.min_blend_cosine() : kDefaultMinBlendCosine;
  if (!(plan->min_blend_cosine > 0 && plan->min_blend_cosine <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("recipe.min_blend_cosine ",
                                                   recipe.min_blend_cosine(), " is not in (0, 1]"));
  }
  plan->max_call_ms = recipe.max_call_ms();
  if (!(std::isfinite(plan->max_call_ms) && plan->max_call_ms >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat("recipe.max_call_ms ", recipe.max_call_ms(),
                                                   " must be finite and >= 0"));
  }
  const int64_t rows = plan->indexed_rows;
  plan->held_out_frames =
      recipe.held_out_frames() != 0
          ? recipe.held_out_frames()
          : std::max(kMinHeldOut, std::min(kMaxHeldOut, rows / 50));
  const int64_t train_rows = rows - plan->held_out_frames;
  if (plan->held_out_frames >= rows / 2 || train_rows < kMinPqRows) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the auto recipe needs at least ", kMinPqRows, " rows to build on besides ",
        plan->held_out_frames, " held-out frames (and no more than half the set held out); the "
        "set has ", rows, " rows"));
  }
  const Metric metric = plan->normalize ? Metric::kInnerProduct : Metric::kL2;
  // From RVC's many small lists to few large ones. Frames whose neighbours straddle many lists
  // (speech) need many probes; the pruned exact coarse step keeps many lists cheap to choose from.
  const int64_t rvc_lists = RvcListCount(train_rows);
  const int64_t few_lists = RootListCount(4, train_rows);
  const int64_t fewest_lists = RootListCount(1, train_rows);
  auto fast_lists = FastScanLists(0, train_rows, plan);
  if (!fast_lists.ok()) return fast_lists.status();
  plan->candidates.push_back(Candidate(absl::StrCat("IVF", rvc_lists, ",Flat"), metric,
                                       {{1, 0}, {2, 0}, {4, 0}, {8, 0}, {16, 0}}));
  if (few_lists != rvc_lists) {
    plan->candidates.push_back(Candidate(absl::StrCat("IVF", few_lists, ",Flat"), metric,
                                         {{1, 0}, {2, 0}, {4, 0}, {8, 0}, {16, 0}, {32, 0}}));
  }
  if (fewest_lists != few_lists) {
    plan->candidates.push_back(Candidate(absl::StrCat("IVF", fewest_lists, ",Flat"), metric,
                                         {{4, 0}, {8, 0}, {16, 0}, {32, 0}}));
  }
  if (plan->dim % 2 == 0) {
    plan->candidates.push_back(Candidate(FastScanDescription(*fast_lists, plan->dim), metric,
                                         {{4, 4}, {8, 4}, {8, 8}, {16, 8}, {32, 8}}));
  }
  // Many probes scanned in a sixth of the dimensions as 8-bit codes (a sixteenth of the bytes of
  // RVC's lists per frame), then re-ranked on the exact vectors: the probes speech frames need.
  if (const int projected = ProjectedDims(plan->dim);
      projected > 0 && train_rows >= 4 * plan->dim) {
    plan->candidates.push_back(
        Candidate(absl::StrCat("PCA", projected, ",IVF", few_lists, ",SQ8,RFlat"), metric,
                  {{8, 4}, {16, 4}, {24, 4}, {32, 4}}));
  }
  for (CandidateIndex& candidate : plan->candidates) {
    const int nlist = static_cast<int>(FactoryListCount(candidate.train.description));
    for (SearchSetting& setting : candidate.settings)
      setting.nprobe = std::min(setting.nprobe, nlist);
    // Settings that clamping made equal are measured once.
    candidate.settings.erase(
        std::unique(candidate.settings.begin(), candidate.settings.end(),
                    [](const SearchSetting& a, const SearchSetting& b) {
                      return a.nprobe == b.nprobe && a.k_factor == b.k_factor;
                    }),
        candidate.settings.end());
  }
  return absl::OkStatus();
}

}  // namespace

int RvcListCount(int64_t n) {
  const int64_t by_root = static_cast<int64_t>(16.0 * std::sqrt(static_cast<double>(n)));
  return static_cast<int>(std::max<int64_t>(1, std::min(by_root, n / kRowsPerList)));
}

absl::string_view RecipeKindName(Recipe::Kind kind) {
  switch (kind) {
    case Recipe::KIND_RVC:
      return "rvc";
    case Recipe::KIND_FASTSCAN:
      return "fastscan";
    case Recipe::KIND_FACTORY:
      return "factory";
    case Recipe::KIND_AUTO:
      return "auto";
    default:
      return "unspecified";
  }
}

absl::StatusOr<BuildPlan> PlanBuild(const Recipe& recipe, int64_t rows, int dim,
                                    uint32_t shuffle_seed) {
  BuildPlan plan;
  plan.dim = dim;
  plan.shuffle_seed = recipe.has_shuffle_seed() ? recipe.shuffle_seed() : shuffle_seed;
  if (rows < kRowsPerList) {
    return absl::InvalidArgumentError(absl::StrCat("the feature set has ", rows,
                                                   " rows; an index needs at least ", kRowsPerList));
  }
  if (absl::Status pre = PlanPreprocessing(recipe, rows, &plan); !pre.ok()) return pre;
  const int64_t n = plan.indexed_rows;
  const Metric metric = plan.normalize || recipe.inner_product() ? Metric::kInnerProduct : Metric::kL2;
  const int k_factor = recipe.k_factor() != 0 ? static_cast<int>(recipe.k_factor()) : kDefaultKFactor;

  plan.kind = recipe.kind();
  switch (recipe.kind()) {
    case Recipe::KIND_RVC: {
      if (plan.normalize || recipe.inner_product()) {
        return absl::InvalidArgumentError(
            "the rvc recipe is RVC's L2 index; for cosine or query expansion use the fastscan, "
            "factory or auto recipe");
      }
      const int nprobe = recipe.nprobe() != 0 ? static_cast<int>(recipe.nprobe()) : 1;
      plan.candidates.push_back(
          Candidate(absl::StrCat("IVF", RvcListCount(n), ",Flat"), Metric::kL2, {{nprobe, 0}}));
      break;
    }
    case Recipe::KIND_FASTSCAN: {
      if (dim % 2 != 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("fastscan needs an even dim (PQ dim/2 x 4 bits); the set has dim ", dim));
      }
      if (n < kMinPqRows) {
        return absl::InvalidArgumentError(absl::StrCat(
            "fastscan needs at least ", kMinPqRows, " rows to train 4-bit PQ; the set has ", n));
      }
      auto lists = FastScanLists(recipe.nlist(), n, &plan);
      if (!lists.ok()) return lists.status();
      const int nprobe = recipe.nprobe() != 0 ? static_cast<int>(recipe.nprobe()) : kDefaultFastScanNprobe;
      plan.candidates.push_back(
          Candidate(FastScanDescription(*lists, dim), metric, {{nprobe, k_factor}}));
      break;
    }
    case Recipe::KIND_FACTORY: {
      if (recipe.factory().empty()) {
        return absl::InvalidArgumentError("the factory recipe needs recipe.factory, e.g. \"IVF1024,Flat\"");
      }
      if (absl::Status valid = FaissIndex::CheckDescription(recipe.factory(), dim, metric); !valid.ok()) {
        return valid;
      }
      if (absl::Status rows_ok = CheckListRows(FactoryListCount(recipe.factory()), n,
                                               absl::StrCat("'", recipe.factory(), "'"));
          !rows_ok.ok()) {
        return rows_ok;
      }
      const int nprobe = recipe.nprobe() != 0 ? static_cast<int>(recipe.nprobe()) : 1;
      plan.candidates.push_back(Candidate(recipe.factory(), metric, {{nprobe, k_factor}}));
      break;
    }
    case Recipe::KIND_AUTO:
      if (absl::Status planned = PlanAuto(recipe, &plan); !planned.ok()) return planned;
      break;
    default:
      return absl::InvalidArgumentError(
          "recipe.kind must be KIND_RVC, KIND_FASTSCAN, KIND_FACTORY or KIND_AUTO");
  }
  if (recipe.kind() != Recipe::KIND_FASTSCAN && recipe.nlist() != 0) {
    return absl::InvalidArgumentError("recipe.nlist applies only to the fastscan recipe");
  }
  for (const CandidateIndex& candidate : plan.candidates) {
    const int64_t nlist = FactoryListCount(candidate.train.description);
    if (nlist > 0 && candidate.train.nprobe > nlist) {
      return absl::InvalidArgumentError(absl::StrCat("recipe.nprobe ", candidate.train.nprobe,
                                                     " exceeds the ", nlist, " lists of ",
                                                     candidate.train.description));
    }
  }
  return plan;
}

}  // namespace timbre
