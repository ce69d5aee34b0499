// The one place where absl::Status becomes grpc::Status.
#ifndef TIMBRE_SERVER_SERVICE_GRPC_STATUS_H_
#define TIMBRE_SERVER_SERVICE_GRPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace timbre {

// Same code (absl and gRPC share the canonical codes), same message.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The canonical name of a gRPC code, e.g. "INVALID_ARGUMENT", for metric labels and logs.
const char* GrpcCodeName(grpc::StatusCode code);

}  // namespace timbre

#endif  // TIMBRE_SERVER_SERVICE_GRPC_STATUS_H_
