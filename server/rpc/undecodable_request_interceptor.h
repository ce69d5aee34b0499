// UndecodableRequestInterceptor: a request that is not a valid protobuf message of its method's
// type is answered INVALID_ARGUMENT with a message naming the method, and counted as an invalid
// call, instead of gRPC's UNIMPLEMENTED with an empty message.
//
// gRPC's callback handlers of unary and server-streaming methods decode the request before any
// handler runs; when decoding fails they drop the decoder's error and finish the call with
// UNIMPLEMENTED and no message, which reads as "no such method". A server interceptor sees both
// ends of that path: the received message is null after a failed decode (POST_RECV_MESSAGE), and
// the status the call finishes with can be replaced before it is sent (PRE_SEND_STATUS). Methods
// whose client streams (BlendStream, UploadFeatures) read raw bytes and decode each message in
// their reactors, which name the block or message that failed.
//
// Thread-safe: the factory is shared; each call gets its own interceptor.
#ifndef TIMBRE_SERVER_RPC_UNDECODABLE_REQUEST_INTERCEPTOR_H_
#define TIMBRE_SERVER_RPC_UNDECODABLE_REQUEST_INTERCEPTOR_H_

#include <string>

#include "absl/strings/string_view.h"
#include "grpcpp/support/server_interceptor.h"
#include "server/metrics/server_metrics.h"

namespace timbre {

// The status of a call to `method` (its full path) whose request could not be decoded.
grpc::Status UndecodableRequestStatus(absl::string_view method);

class UndecodableRequestInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  // `metrics` must outlive every call.
  explicit UndecodableRequestInterceptorFactory(ServerMetrics* metrics) : metrics_(metrics) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  ServerMetrics* metrics_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_RPC_UNDECODABLE_REQUEST_INTERCEPTOR_H_
