// The one place where absl::Status becomes grpc::Status.
#ifndef TIMBRE_SERVER_RPC_GRPC_STATUS_H_
#define TIMBRE_SERVER_RPC_GRPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace timbre {

// Same code (absl and gRPC share the canonical codes), same message.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace timbre

#endif  // TIMBRE_SERVER_RPC_GRPC_STATUS_H_
