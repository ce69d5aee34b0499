#include "server/build/index_builder.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/build/candidate_choice.h"
#include "server/build/candidate_evaluation.h"
#include "server/build/feature_transforms.h"
#include "server/faiss/faiss_index.h"
#include "server/faiss/faiss_kmeans.h"
#include "server/io/vectors_file.h"
#include "server/serving/speaker_name.h"

namespace timbre {
namespace {

using timbre::v1::BuildReport;
using timbre::v1::IndexEvaluation;

constexpr char kVectorsFileName[] = "vectors.f32";
constexpr int kEvaluationK = 8;

FrameMatrix RowRange(const FrameMatrix& rows, int64_t begin, int64_t end) {
  FrameMatrix out;
  out.rows = end - begin;
  out.dim = rows.dim;
  out.values.assign(rows.row(begin), rows.row(begin) + out.rows * rows.dim);
  return out;
}

absl::StatusOr<std::unique_ptr<FaissIndex>> TrainCandidate(const CandidateIndex& candidate,
                                                           const SearchSetting& setting,
                                                           const FrameMatrix& rows,
                                                           BuildControl* control) {
  TrainOptions train = candidate.train;
  train.nprobe = std::max(1, setting.nprobe);
  train.k_factor = setting.k_factor;
  return FaissIndex::Train(train, rows.values.data(), rows.rows, rows.dim, control);
}

// The figures of candidate `index` at `setting`, measured on `queries` against `exact`.
absl::StatusOr<IndexEvaluation> Measure(FaissIndex& index, const SearchSetting& setting,
                                        const FaissIndex& exact, const FrameMatrix& queries,
                                        BuildControl* control) {
  if (absl::Status set = index.SetSearchDefaults(setting.nprobe, setting.k_factor); !set.ok()) {
    return set;
  }
  EvaluationOptions options;
  options.k = kEvaluationK;
  SearchParams params;
  params.k = kEvaluationK;
  auto figures = EvaluateCandidate(index, params, exact, queries, options, control);
  if (!figures.ok()) return figures.status();
  IndexEvaluation evaluation;
  evaluation.set_description(index.description());
  evaluation.set_nprobe(index.nprobe());
  evaluation.set_k_factor(index.k_factor());
  evaluation.set_recall_at_k(figures->recall_at_k);
  evaluation.set_mean_blend_cosine(figures->mean_blend_cosine);
  evaluation.set_p50_call_ms(figures->p50_call_us / 1000.0);
  evaluation.set_p99_call_ms(figures->p99_call_us / 1000.0);
  evaluation.set_memory_bytes(index.memory_bytes());
  evaluation.set_list_imbalance(index.list_imbalance());
  evaluation.set_held_out_frames(queries.rows);
  evaluation.set_k(kEvaluationK);
  return evaluation;
}

// The p50 per call of `index` (at its stored search settings) searched without timbre's pruned
// steps (SearchParams::unpruned), timed as Measure times a candidate.
absl::StatusOr<double> UnprunedP50Ms(const FaissIndex& index, const FrameMatrix& queries,
                                     BuildControl* control) {
  EvaluationOptions options;
  options.k = kEvaluationK;
  SearchParams params;
  params.k = kEvaluationK;
  params.unpruned = true;
  auto figures = TimeCandidate(index, params, queries, options, control);
  if (!figures.ok()) return figures.status();
  return figures->p50_call_us / 1000.0;
}

// The auto recipe: trains and measures every candidate on all rows but the held-out ones, records
// their figures in `report` and returns the kept (candidate, setting).
absl::StatusOr<std::pair<const CandidateIndex*, SearchSetting>> MeasureAndChoose(
    const BuildPlan& plan, const FrameMatrix& db, const FrameMatrix& frames,
    BuildProgress& progress, BuildReport* report) {
  const int64_t train_rows = db.rows - plan.held_out_frames;
  const FrameMatrix train = RowRange(db, 0, train_rows);
  // Held-out queries look like the frames a client sends: raw, normalised for cosine indexes.
  FrameMatrix queries = RowRange(frames, train_rows, frames.rows);
  if (plan.normalize) NormalizeRows(&queries);

  progress.Begin(BuildStage::kReference);
  TrainOptions exact_options;
  exact_options.description = "Flat";
  exact_options.metric = plan.candidates.front().train.metric;
  auto exact = FaissIndex::Train(exact_options, train.values.data(), train.rows, train.dim, &progress);
  if (!exact.ok()) return exact.status();

  std::vector<std::pair<const CandidateIndex*, SearchSetting>> measured;
  for (const CandidateIndex& candidate : plan.candidates) {
    progress.Begin(BuildStage::kTraining);
    const absl::Time start = absl::Now();
    auto index = TrainCandidate(candidate, candidate.settings.front(), train, &progress);
    if (!index.ok()) return index.status();
    const double build_seconds = absl::ToDoubleSeconds(absl::Now() - start);
    for (const SearchSetting& setting : candidate.settings) {
      progress.Begin(BuildStage::kEvaluating);
      auto evaluation = Measure(**index, setting, **exact, queries, &progress);
      if (!evaluation.ok()) return evaluation.status();
      if (measured.empty()) {
        // RVC's own recipe at nprobe 1: also its cost without the pruned steps, the default bound.
        auto unpruned = UnprunedP50Ms(**index, queries, &progress);
        if (!unpruned.ok()) return unpruned.status();
        report->set_rvc_unpruned_p50_call_ms(*unpruned);
      }
      evaluation->set_build_seconds(build_seconds);
      *report->add_candidates() = *evaluation;
      measured.emplace_back(&candidate, setting);
      progress.ReportChanged();
    }
  }

  const std::vector<IndexEvaluation> figures(report->candidates().begin(),
                                             report->candidates().end());
  auto choice = ChooseCandidate(figures, plan.min_blend_cosine, plan.max_call_ms,
                                report->rvc_unpruned_p50_call_ms());
  if (!choice.ok()) return choice.status();
  for (const std::string& note : choice->notes) report->add_notes(note);
  report->set_max_call_ms(choice->max_call_ms);
  report->set_chosen_candidate(choice->chosen);
  return measured[choice->chosen];
}

timbre::v1::VersionMetadata VersionFor(const BuildRequest& request, const BuildPlan& plan,
                                       const FaissIndex& index, const BuildReport& report,
                                       bool write_vectors) {
  timbre::v1::VersionMetadata metadata;
  metadata.set_dim(index.dim());
  metadata.set_num_vectors(index.size());
  metadata.set_description(index.description());
  metadata.set_recipe(std::string(RecipeKindName(plan.kind)));
  metadata.set_comment(request.comment);
  if (write_vectors) metadata.set_vectors_file(kVectorsFileName);
  metadata.set_normalize_queries(plan.normalize);
  metadata.set_nprobe(index.nprobe());
  metadata.set_k_factor(index.k_factor());
  if (report.candidates_size() > 0) {
    *metadata.mutable_evaluation() = report.candidates(report.chosen_candidate());
  }
  metadata.set_job_id(request.job_id);
  metadata.set_feature_set_id(request.feature_set_id);
  return metadata;
}

}  // namespace

absl::StatusOr<std::unique_ptr<IndexBuilder>> IndexBuilder::Create(Options options) {
  if (options.feature_sets == nullptr || options.repository == nullptr) {
    return absl::InvalidArgumentError("IndexBuilder needs a feature-set store and a repository");
  }
  return std::unique_ptr<IndexBuilder>(new IndexBuilder(options));
}

absl::StatusOr<BuildPlan> IndexBuilder::Plan(const BuildRequest& request) const {
  if (absl::Status name = ValidateSpeakerName(request.speaker); !name.ok()) return name;
  auto feature_set = options_.feature_sets->Get(request.feature_set_id);
  if (!feature_set.ok()) return feature_set.status();
  return PlanBuild(request.recipe, feature_set->rows, feature_set->dim, request.default_seed);
}

absl::StatusOr<BuildReport> IndexBuilder::Build(const BuildRequest& request,
                                                BuildObserver* observer) const {
  auto plan = Plan(request);
  if (!plan.ok()) return plan.status();
  BuildReport report;
  report.set_shuffle_seed(plan->shuffle_seed);
  report.set_dim(plan->dim);
  for (const std::string& note : plan->notes) report.add_notes(note);
  BuildProgress progress(BuildSteps(*plan), observer, &report);

  progress.Begin(BuildStage::kLoading);
  auto frames = options_.feature_sets->LoadRows(request.feature_set_id, &progress);
  if (!frames.ok()) return frames.status();
  report.set_input_rows(frames->rows);

  progress.Begin(BuildStage::kShuffling);
  std::vector<int64_t> order = NumpyShufflePermutation(frames->rows, plan->shuffle_seed);
  // auto measures its candidates on the set's last frames in file order: unseen speech.
  if (plan->kind == timbre::v1::Recipe::KIND_AUTO && !plan->compress) {
    MoveRowsToEnd(frames->rows - plan->held_out_frames, &order);
  }
  *frames = PermuteRows(*frames, order);
  if (IsCancelled(&progress)) return BuildCancelledError();

  if (plan->compress) {
    progress.Begin(BuildStage::kCompressing);
    KmeansOptions kmeans;
    kmeans.centroids = plan->kmeans_centroids;
    kmeans.iterations = plan->kmeans_iterations;
    kmeans.seed = static_cast<int>(plan->shuffle_seed);
    auto centroids = KmeansCentroids(*frames, kmeans, &progress);
    if (!centroids.ok()) return centroids.status();
    *frames = *std::move(centroids);
    report.set_compressed(true);
  }
  report.set_indexed_rows(frames->rows);

  // `db` is what the index searches; `frames` what Blend mixes. They differ once normalised.
  FrameMatrix normalized;
  const FrameMatrix* db = &*frames;
  if (plan->normalize) {
    progress.Begin(BuildStage::kNormalizing);
    normalized = *frames;
    NormalizeRows(&normalized);
    if (plan->expansion_neighbours > 0) {
      progress.Begin(BuildStage::kExpanding);
      AlphaQueryExpansion expansion;
      expansion.alpha = plan->expansion_alpha;
      expansion.neighbours = plan->expansion_neighbours;
      auto expanded = AlphaQueryExpand(normalized, expansion, &progress);
      if (!expanded.ok()) return expanded.status();
      normalized = *std::move(expanded);
    }
    db = &normalized;
  }
  if (IsCancelled(&progress)) return BuildCancelledError();

  const CandidateIndex* candidate = &plan->candidates.front();
  SearchSetting setting = candidate->settings.front();
  if (plan->kind == timbre::v1::Recipe::KIND_AUTO) {
    report.set_min_blend_cosine(plan->min_blend_cosine);
    auto chosen = MeasureAndChoose(*plan, *db, *frames, progress, &report);
    if (!chosen.ok()) return chosen.status();
    std::tie(candidate, setting) = *chosen;
  }
  progress.Begin(BuildStage::kTraining);
  auto index = TrainCandidate(*candidate, setting, *db, &progress);
  if (!index.ok()) return index.status();
  report.set_description((*index)->description());
  report.set_inner_product((*index)->metric() == Metric::kInnerProduct);
  report.set_nprobe((*index)->nprobe());
  report.set_k_factor((*index)->k_factor());
  if (IsCancelled(&progress)) return BuildCancelledError();

  progress.Begin(BuildStage::kPublishing);
  if (IsCancelled(&progress)) return BuildCancelledError();
  const bool write_vectors = plan->normalize || !(*index)->stores_exact_vectors();
  auto version = options_.repository->PublishVersion(
      request.speaker, VersionFor(request, *plan, **index, report, write_vectors),
      [&](const std::string& dir) -> absl::Status {
        if (absl::Status written = (*index)->Write(dir + "/" + kDefaultIndexFileName);
            !written.ok()) {
          return written;
        }
        if (write_vectors) {
          absl::Status vectors = WriteVectorsFile(
              dir + "/" + kVectorsFileName, frames->values.data(), frames->rows, frames->dim);
          if (!vectors.ok()) return vectors;
        }
        // The last point where a cancel still stops the build: nothing is published yet.
        return IsCancelled(&progress) ? BuildCancelledError() : absl::OkStatus();
      });
  if (!version.ok()) return version.status();
  report.set_version(*version);
  progress.Finish(absl::StrCat("published version ", *version, " of '", request.speaker, "'"));
  return report;
}

}  // namespace timbre
