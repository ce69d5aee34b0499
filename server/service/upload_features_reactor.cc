#include "server/service/upload_features_reactor.h"

#include "server/service/proto_convert.h"

namespace timbre {

UploadFeaturesReactor::UploadFeaturesReactor(FeatureSetStore* store, ServerMetrics* metrics,
                                             grpc::CallbackServerContext* context,
                                             timbre::v1::FeatureSet* response)
    : recorder_(metrics, "UploadFeatures"), context_(context), response_(response) {
  absl::StatusOr<std::unique_ptr<FeatureSetUpload>> upload = store->BeginUpload();
  if (!upload.ok()) {
    FinishWith(upload.status());
    return;
  }
  upload_ = *std::move(upload);
  StartRead(&request_);
}

void UploadFeaturesReactor::OnReadDone(bool ok) {
  if (!ok && context_->IsCancelled()) {
    FinishWith(absl::CancelledError("the upload was cancelled; nothing was stored"));
    return;
  }
  if (!ok) {
    // End of the client's stream: verify, validate and publish.
    absl::StatusOr<FeatureSetInfo> info = upload_->Finish();
    if (info.ok()) ToProto(*info, response_);
    FinishWith(info.status());
    return;
  }
  if (absl::Status applied = Apply(request_); !applied.ok()) {
    FinishWith(applied);
    return;
  }
  StartRead(&request_);
}

absl::Status UploadFeaturesReactor::Apply(const timbre::v1::UploadFeaturesRequest& request) {
  switch (request.part_case()) {
    case timbre::v1::UploadFeaturesRequest::kFile:
      return upload_->BeginFile(request.file().name(),
                                static_cast<int64_t>(request.file().size_bytes()),
                                request.file().sha256());
    case timbre::v1::UploadFeaturesRequest::kChunk:
      return upload_->Append(request.chunk());
    default:
      return absl::InvalidArgumentError("an upload message must carry a file header or a chunk");
  }
}

void UploadFeaturesReactor::FinishWith(const absl::Status& status) {
  // Dropping the upload removes its staging files unless Finish() published them.
  upload_.reset();
  Finish(recorder_.Record(status, 0));
}

}  // namespace timbre
