#include "server/rpc/undecodable_request_interceptor.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"

namespace timbre {
namespace {

using grpc::experimental::InterceptionHookPoints;

class UndecodableRequestInterceptor final : public grpc::experimental::Interceptor {
 public:
  UndecodableRequestInterceptor(ServerMetrics* metrics, grpc::experimental::ServerRpcInfo* info)
      : metrics_(metrics), info_(info), start_(absl::Now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() == nullptr) {
      undecodable_ = true;
    }
    if (undecodable_ &&
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status sent = methods->GetSendStatus();
      // What gRPC's handler sends after a failed decode; a handler's own status stays.
      if (sent.error_code() == grpc::StatusCode::UNIMPLEMENTED && sent.error_message().empty()) {
        const grpc::Status status = UndecodableRequestStatus(info_->method());
        methods->ModifySendStatus(status);
        metrics_->RecordRefusedBeforeHandler(info_->method(), status.error_code(),
                                             absl::Now() - start_);
      }
    }
    methods->Proceed();
  }

 private:
  ServerMetrics* const metrics_;
  grpc::experimental::ServerRpcInfo* const info_;
  const absl::Time start_;
  bool undecodable_ = false;
};

}  // namespace

grpc::Status UndecodableRequestStatus(absl::string_view method) {
  // "/timbre.v1.Timbre/Blend" is the method "timbre.v1.Timbre.Blend" in the descriptor pool.
  std::string name(absl::StripPrefix(method, "/"));
  std::replace(name.begin(), name.end(), '/', '.');
  const google::protobuf::MethodDescriptor* descriptor =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(name);
  const std::string type =
      descriptor != nullptr ? descriptor->input_type()->full_name() : "its request type";
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      absl::StrCat("the request to '", method, "' is not a valid ", type,
                                   " protobuf message"));
}

grpc::experimental::Interceptor* UndecodableRequestInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  // Only methods whose request gRPC decodes before the handler; a client stream's end also
  // shows as a null message.
  if (info->type() != grpc::experimental::ServerRpcInfo::Type::UNARY &&
      info->type() != grpc::experimental::ServerRpcInfo::Type::SERVER_STREAMING) {
    return nullptr;
  }
  return new UndecodableRequestInterceptor(metrics_, info);
}

}  // namespace timbre
