// Conversions between timbre.v1 messages and the core's types. Validation of the wire format
// (dtype, shape, byte length, finite values) happens here; checks against a speaker's index
// happen in the core's Retriever.
//
// Thread-safe: free functions without state.
#ifndef TIMBRE_SERVER_RPC_PROTO_CONVERT_H_
#define TIMBRE_SERVER_RPC_PROTO_CONVERT_H_

#include <chrono>
#include <string>

#include "absl/status/statusor.h"
#include "server/build/feature_set_store.h"
#include "server/serving/retriever.h"
#include "server/serving/search_scheduler.h"
#include "server/serving/speaker_registry.h"
#include "timbre/v1/index_builder.pb.h"
#include "timbre/v1/timbre.pb.h"

namespace timbre {

// The core dtype of a wire dtype. Errors: INVALID_ARGUMENT for DTYPE_UNSPECIFIED or unknown.
absl::StatusOr<DType> FromProto(timbre::v1::DType dtype);
timbre::v1::DType ToProto(DType dtype);

// A RetrievalCall from a request's parts, applying the option defaults (k 8, index_rate 0.75,
// nprobe 0 = the index's). Errors: INVALID_ARGUMENT naming the speaker and the problem.
absl::StatusOr<RetrievalCall> ToRetrievalCall(const std::string& speaker,
                                              const timbre::v1::Frames& frames,
                                              const timbre::v1::RetrievalOptions& options);

// A call's deadline as the core's absl::Time; gRPC's "no deadline" (time_point::max()) becomes
// absl::InfiniteFuture().
absl::Time FromGrpcDeadline(std::chrono::system_clock::time_point deadline);

// Packs `frames` as `dtype` into `out`.
void ToProto(const FrameMatrix& frames, DType dtype, timbre::v1::Frames* out);

void ToProto(const SearchTiming& timing, absl::Duration blend, timbre::v1::ServerTiming* out);

void ToProto(const SpeakerStatus& status, timbre::v1::SpeakerInfo* out);
timbre::v1::SpeakerInfo::State ToProto(SpeakerState state);

void ToProto(const FeatureSetInfo& info, timbre::v1::FeatureSet* out);

}  // namespace timbre

#endif  // TIMBRE_SERVER_RPC_PROTO_CONVERT_H_
