// IndexBuilderService: the timbre.v1.IndexBuilder gRPC service, a thin stateless adapter over
// the core's FeatureSetStore and BuildJobQueue.
//
// gRPC's callback threads never wait on the disk: every call that reads, hashes or writes files
// (ImportFeatures, DeleteFeatureSet, BuildIndex and CancelJob, which write job records, and each
// message of an upload, see UploadFeaturesReactor) runs on the FileWorkQueue and finishes from
// there; a full queue refuses the call at once (RESOURCE_EXHAUSTED). GetFeatureSet,
// ListFeatureSets, GetJob and ListJobs read memory only and answer on the callback thread. Builds
// run on the job queue's worker; WatchJob streams a job's record at every change
// (WatchJobReactor). Each call records its metrics and log line once, through CallRecorder.
//
// Thread-safe.
#ifndef TIMBRE_SERVER_RPC_INDEX_BUILDER_SERVICE_H_
#define TIMBRE_SERVER_RPC_INDEX_BUILDER_SERVICE_H_

#include "server/build/build_job_queue.h"
#include "server/build/feature_set_store.h"
#include "server/build/file_work_queue.h"
#include "server/metrics/server_metrics.h"
#include "server/rpc/upload_stall_watchdog.h"
#include "timbre/v1/index_builder.grpc.pb.h"

namespace timbre {

// timbre.v1.IndexBuilder with every method on gRPC's callback API; UploadFeatures reads raw
// bytes (see UploadFeaturesReactor).
using IndexBuilderServiceBase = timbre::v1::IndexBuilder::WithRawCallbackMethod_UploadFeatures<
    timbre::v1::IndexBuilder::WithCallbackMethod_ImportFeatures<
        timbre::v1::IndexBuilder::WithCallbackMethod_GetFeatureSet<
            timbre::v1::IndexBuilder::WithCallbackMethod_ListFeatureSets<
                timbre::v1::IndexBuilder::WithCallbackMethod_DeleteFeatureSet<
                    timbre::v1::IndexBuilder::WithCallbackMethod_BuildIndex<
                        timbre::v1::IndexBuilder::WithCallbackMethod_GetJob<
                            timbre::v1::IndexBuilder::WithCallbackMethod_ListJobs<
                                timbre::v1::IndexBuilder::WithCallbackMethod_WatchJob<
                                    timbre::v1::IndexBuilder::WithCallbackMethod_CancelJob<
                                        timbre::v1::IndexBuilder::Service>>>>>>>>>>;

class IndexBuilderService final : public IndexBuilderServiceBase {
 public:
  // All collaborators must outlive the service, and `file_work` every call (it runs their file
  // work). `upload_stall_timeout`: an upload whose client sends no complete message for this long
  // is ended (UploadStallWatchdog); infinite: never.
  IndexBuilderService(FeatureSetStore* feature_sets, BuildJobQueue* jobs, FileWorkQueue* file_work,
                      ServerMetrics* metrics, absl::Duration upload_stall_timeout)
      : feature_sets_(feature_sets),
        jobs_(jobs),
        file_work_(file_work),
        metrics_(metrics),
        upload_watchdog_(upload_stall_timeout) {}

  grpc::ServerReadReactor<grpc::ByteBuffer>* UploadFeatures(grpc::CallbackServerContext* context,
                                                            grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* ImportFeatures(grpc::CallbackServerContext* context,
                                           const timbre::v1::ImportFeaturesRequest* request,
                                           timbre::v1::FeatureSet* response) override;
  grpc::ServerUnaryReactor* GetFeatureSet(grpc::CallbackServerContext* context,
                                          const timbre::v1::GetFeatureSetRequest* request,
                                          timbre::v1::FeatureSet* response) override;
  grpc::ServerUnaryReactor* ListFeatureSets(grpc::CallbackServerContext* context,
                                            const timbre::v1::ListFeatureSetsRequest* request,
                                            timbre::v1::ListFeatureSetsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteFeatureSet(grpc::CallbackServerContext* context,
                                             const timbre::v1::DeleteFeatureSetRequest* request,
                                             timbre::v1::DeleteFeatureSetResponse* response) override;
  grpc::ServerUnaryReactor* BuildIndex(grpc::CallbackServerContext* context,
                                       const timbre::v1::BuildIndexRequest* request,
                                       timbre::v1::BuildJob* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const timbre::v1::GetJobRequest* request,
                                   timbre::v1::BuildJob* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const timbre::v1::ListJobsRequest* request,
                                     timbre::v1::ListJobsResponse* response) override;
  grpc::ServerWriteReactor<timbre::v1::BuildJob>* WatchJob(
      grpc::CallbackServerContext* context, const timbre::v1::WatchJobRequest* request) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const timbre::v1::CancelJobRequest* request,
                                      timbre::v1::BuildJob* response) override;

 private:
  FeatureSetStore* feature_sets_;
  BuildJobQueue* jobs_;
  FileWorkQueue* file_work_;
  ServerMetrics* metrics_;
  UploadStallWatchdog upload_watchdog_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_RPC_INDEX_BUILDER_SERVICE_H_
