#include "server/rpc/index_builder_service.h"

#include <memory>
#include <utility>

#include "server/rpc/call_recorder.h"
#include "server/rpc/proto_convert.h"
#include "server/rpc/upload_features_reactor.h"
#include "server/rpc/watch_job_reactor.h"

namespace timbre {
namespace {

// Finishes a unary call whose work is `fn`, returning absl::Status or StatusOr<T>, recording it.
template <typename Fn>
grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* context, ServerMetrics* metrics,
                                const char* method, Fn&& fn) {
  CallRecorder recorder(metrics, method);
  const absl::Status status = fn();
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(recorder.Record(status, 0));
  return reactor;
}

// Finishes a unary call whose work is `fn` (returning absl::Status) on `file_work`, recording it;
// a full queue finishes the call at once with its status.
template <typename Fn>
grpc::ServerUnaryReactor* UnaryOffThread(grpc::CallbackServerContext* context,
                                         ServerMetrics* metrics, FileWorkQueue* file_work,
                                         const char* method, Fn fn) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto recorder = std::make_shared<CallRecorder>(metrics, method);
  const absl::Status queued = file_work->Run(
      [reactor, recorder, fn = std::move(fn)]() mutable { reactor->Finish(recorder->Record(fn(), 0)); });
  if (!queued.ok()) reactor->Finish(recorder->Record(queued, 0));
  return reactor;
}

// Copies a StatusOr's value into `out` when it is OK, and returns its status.
template <typename T, typename Out>
absl::Status Answer(absl::StatusOr<T> result, Out* out) {
  if (!result.ok()) return result.status();
  ToProto(*result, out);
  return absl::OkStatus();
}

absl::Status AnswerJob(absl::StatusOr<timbre::v1::BuildJob> job, timbre::v1::BuildJob* out) {
  if (!job.ok()) return job.status();
  *out = *std::move(job);
  return absl::OkStatus();
}

}  // namespace

grpc::ServerReadReactor<grpc::ByteBuffer>* IndexBuilderService::UploadFeatures(
    grpc::CallbackServerContext* context, grpc::ByteBuffer* response) {
  return new UploadFeaturesReactor(feature_sets_, file_work_, metrics_, &upload_watchdog_, context,
                                   response);
}

grpc::ServerUnaryReactor* IndexBuilderService::ImportFeatures(
    grpc::CallbackServerContext* context, const timbre::v1::ImportFeaturesRequest* request,
    timbre::v1::FeatureSet* response) {
  return UnaryOffThread(context, metrics_, file_work_, "ImportFeatures", [this, request, response] {
    return Answer(feature_sets_->ImportDirectory(request->path()), response);
  });
}

grpc::ServerUnaryReactor* IndexBuilderService::GetFeatureSet(
    grpc::CallbackServerContext* context, const timbre::v1::GetFeatureSetRequest* request,
    timbre::v1::FeatureSet* response) {
  return Unary(context, metrics_, "GetFeatureSet",
               [&] { return Answer(feature_sets_->Get(request->id()), response); });
}

grpc::ServerUnaryReactor* IndexBuilderService::ListFeatureSets(
    grpc::CallbackServerContext* context, const timbre::v1::ListFeatureSetsRequest* request,
    timbre::v1::ListFeatureSetsResponse* response) {
  return Unary(context, metrics_, "ListFeatureSets", [&] {
    for (const FeatureSetInfo& info : feature_sets_->List()) {
      ToProto(info, response->add_feature_sets());
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* IndexBuilderService::DeleteFeatureSet(
    grpc::CallbackServerContext* context, const timbre::v1::DeleteFeatureSetRequest* request,
    timbre::v1::DeleteFeatureSetResponse* response) {
  return UnaryOffThread(context, metrics_, file_work_, "DeleteFeatureSet",
                        [this, request] { return feature_sets_->Delete(request->id()); });
}

grpc::ServerUnaryReactor* IndexBuilderService::BuildIndex(
    grpc::CallbackServerContext* context, const timbre::v1::BuildIndexRequest* request,
    timbre::v1::BuildJob* response) {
  return UnaryOffThread(context, metrics_, file_work_, "BuildIndex", [this, request, response] {
    BuildRequest build;
    build.speaker = request->speaker();
    build.feature_set_id = request->feature_set_id();
    build.recipe = request->recipe();
    build.comment = request->comment();
    return AnswerJob(jobs_->Submit(std::move(build)), response);
  });
}

grpc::ServerUnaryReactor* IndexBuilderService::GetJob(grpc::CallbackServerContext* context,
                                                      const timbre::v1::GetJobRequest* request,
                                                      timbre::v1::BuildJob* response) {
  return Unary(context, metrics_, "GetJob",
               [&] { return AnswerJob(jobs_->Get(request->id()), response); });
}

grpc::ServerUnaryReactor* IndexBuilderService::ListJobs(grpc::CallbackServerContext* context,
                                                        const timbre::v1::ListJobsRequest* request,
                                                        timbre::v1::ListJobsResponse* response) {
  return Unary(context, metrics_, "ListJobs", [&] {
    for (timbre::v1::BuildJob& job : jobs_->List()) *response->add_jobs() = std::move(job);
    return absl::OkStatus();
  });
}

grpc::ServerWriteReactor<timbre::v1::BuildJob>* IndexBuilderService::WatchJob(
    grpc::CallbackServerContext* context, const timbre::v1::WatchJobRequest* request) {
  return new WatchJobReactor(jobs_, metrics_, request->id());
}

grpc::ServerUnaryReactor* IndexBuilderService::CancelJob(
    grpc::CallbackServerContext* context, const timbre::v1::CancelJobRequest* request,
    timbre::v1::BuildJob* response) {
  return UnaryOffThread(context, metrics_, file_work_, "CancelJob", [this, request, response] {
    return AnswerJob(jobs_->Cancel(request->id()), response);
  });
}

}  // namespace timbre
