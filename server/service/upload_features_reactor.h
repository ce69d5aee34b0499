// UploadFeaturesReactor: one IndexBuilder.UploadFeatures call, a client stream of file headers
// and chunks written straight into a FeatureSetUpload.
//
// Each message is applied as it arrives (so memory stays at one chunk); the first error ends the
// call with its status and the upload's staging files are removed. At the end of the stream the
// upload is verified and published, and the call answers with the new feature set. A call the
// client cancels publishes nothing, even when it stopped between two files.
//
// Thread-compatible: gRPC runs one reaction of a call at a time.
#ifndef TIMBRE_SERVER_SERVICE_UPLOAD_FEATURES_REACTOR_H_
#define TIMBRE_SERVER_SERVICE_UPLOAD_FEATURES_REACTOR_H_

#include <memory>

#include "grpcpp/grpcpp.h"
#include "server/core/feature_set_store.h"
#include "server/service/call_recorder.h"
#include "timbre/v1/index_builder.pb.h"

namespace timbre {

class UploadFeaturesReactor final
    : public grpc::ServerReadReactor<timbre::v1::UploadFeaturesRequest> {
 public:
  // `store` and `metrics` must outlive the call; `context` and `response` are the call's.
  UploadFeaturesReactor(FeatureSetStore* store, ServerMetrics* metrics,
                        grpc::CallbackServerContext* context, timbre::v1::FeatureSet* response);

  void OnReadDone(bool ok) override;
  void OnDone() override { delete this; }

 private:
  absl::Status Apply(const timbre::v1::UploadFeaturesRequest& request);
  void FinishWith(const absl::Status& status);

  CallRecorder recorder_;
  grpc::CallbackServerContext* context_;
  timbre::v1::FeatureSet* response_;
  std::unique_ptr<FeatureSetUpload> upload_;
  timbre::v1::UploadFeaturesRequest request_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_SERVICE_UPLOAD_FEATURES_REACTOR_H_
