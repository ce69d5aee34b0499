#include "server/rpc/proto_convert.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace timbre {
namespace {

uint32_t Micros(absl::Duration duration) {
  return static_cast<uint32_t>(std::clamp<int64_t>(absl::ToInt64Microseconds(duration), 0,
                                                   std::numeric_limits<uint32_t>::max()));
}

}  // namespace

absl::StatusOr<DType> FromProto(timbre::v1::DType dtype) {
  switch (dtype) {
    case timbre::v1::DTYPE_FLOAT32: return DType::kFloat32;
    case timbre::v1::DTYPE_FLOAT16: return DType::kFloat16;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "frames: dtype ", timbre::v1::DType_Name(dtype), " (", static_cast<int>(dtype),
          "); use DTYPE_FLOAT32 or DTYPE_FLOAT16"));
  }
}

absl::Time FromGrpcDeadline(std::chrono::system_clock::time_point deadline) {
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

timbre::v1::DType ToProto(DType dtype) {
  return dtype == DType::kFloat16 ? timbre::v1::DTYPE_FLOAT16 : timbre::v1::DTYPE_FLOAT32;
}

absl::StatusOr<RetrievalCall> ToRetrievalCall(const std::string& speaker,
                                              const timbre::v1::Frames& frames,
                                              const timbre::v1::RetrievalOptions& options) {
  const std::string who = absl::StrCat("speaker '", speaker, "': ");
  absl::StatusOr<DType> dtype = FromProto(frames.dtype());
  if (!dtype.ok()) return absl::InvalidArgumentError(who + std::string(dtype.status().message()));
  if (frames.num_frames() == 0) return absl::InvalidArgumentError(who + "the batch has no frames");
  absl::StatusOr<FrameMatrix> decoded =
      DecodeFrames(*dtype, frames.num_frames(), static_cast<int>(frames.dim()), frames.data());
  if (!decoded.ok()) {
    return absl::InvalidArgumentError(who + std::string(decoded.status().message()));
  }
  RetrievalCall call;
  call.speaker = speaker;
  call.frames = *std::move(decoded);
  call.params.k = options.k() == 0 ? kDefaultK : static_cast<int>(std::min<uint32_t>(options.k(), 1u << 30));
  call.params.nprobe = static_cast<int>(std::min<uint32_t>(options.nprobe(), 1u << 30));
  call.params.k_factor = static_cast<int>(std::min<uint32_t>(options.k_factor(), 1u << 16));
  call.index_rate = options.has_index_rate() ? options.index_rate() : kDefaultIndexRate;
  return call;
}

void ToProto(const FrameMatrix& frames, DType dtype, timbre::v1::Frames* out) {
  out->set_dtype(ToProto(dtype));
  out->set_num_frames(static_cast<uint32_t>(frames.rows));
  out->set_dim(static_cast<uint32_t>(frames.dim));
  out->set_data(EncodeFrames(dtype, frames.values));
}

void ToProto(const SearchTiming& timing, absl::Duration blend, timbre::v1::ServerTiming* out) {
  out->set_queue_us(Micros(timing.queued));
  out->set_search_us(Micros(timing.search));
  out->set_blend_us(Micros(blend));
  out->set_batch_frames(static_cast<uint32_t>(timing.batch_rows));
}

void ToProto(const SpeakerStatus& status, timbre::v1::SpeakerInfo* out) {
  out->set_name(status.name);
  out->set_error(status.error);
  out->set_state(ToProto(status.state));
  if (status.snapshot == nullptr) return;
  const IndexSnapshot& snapshot = *status.snapshot;
  const FaissIndex& index = *snapshot.index;
  out->set_dim(index.dim());
  out->set_num_vectors(index.size());
  out->set_description(index.description());
  out->set_metric(index.metric() == Metric::kL2 ? timbre::v1::METRIC_L2
                                                : timbre::v1::METRIC_INNER_PRODUCT);
  out->set_nprobe(index.nprobe());
  out->set_nlist(index.nlist());
  out->set_version(snapshot.version);
  out->set_memory_bytes(index.memory_bytes());
  out->set_path(snapshot.path);
  out->set_loaded_at_unix_seconds(absl::ToUnixSeconds(snapshot.loaded_at));
  out->set_k_factor(index.k_factor());
  out->set_recipe(snapshot.metadata.recipe());
  if (snapshot.metadata.has_evaluation()) *out->mutable_evaluation() = snapshot.metadata.evaluation();
  out->set_normalize_queries(snapshot.metadata.normalize_queries());
  out->set_mapped_bytes(index.mapped_bytes());
}

timbre::v1::SpeakerInfo::State ToProto(SpeakerState state) {
  switch (state) {
    case SpeakerState::kLoaded: return timbre::v1::SpeakerInfo::STATE_LOADED;
    case SpeakerState::kLoading: return timbre::v1::SpeakerInfo::STATE_LOADING;
    case SpeakerState::kFailed: return timbre::v1::SpeakerInfo::STATE_FAILED;
    case SpeakerState::kUnloaded: return timbre::v1::SpeakerInfo::STATE_UNLOADED;
  }
  return timbre::v1::SpeakerInfo::STATE_UNSPECIFIED;
}

void ToProto(const FeatureSetInfo& info, timbre::v1::FeatureSet* out) {
  out->set_id(info.id);
  out->set_source(info.source);
  for (const FeatureFileInfo& file : info.files) {
    timbre::v1::FeatureFile* proto = out->add_files();
    proto->set_name(file.name);
    proto->set_rows(file.rows);
    proto->set_dim(file.dim);
    proto->set_dtype(file.dtype);
    proto->set_bytes(file.bytes);
    proto->set_sha256(file.sha256);
  }
  out->set_rows(info.rows);
  out->set_dim(info.dim);
  out->set_bytes(info.bytes);
  out->set_created_at_unix_seconds(absl::ToUnixSeconds(info.created_at));
}

}  // namespace timbre
