// Frame decoding as a request delivers it: a timbre.v1.Frames message (dtype, num_frames, dim,
// data) decoded from arbitrary bytes, then converted for the core (float32 and float16, any
// shape and byte count). Either the frames are decoded, exactly num_frames x dim finite values,
// or the call is refused with a status.
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "server/io/frame_codec.h"
#include "server/rpc/proto_convert.h"
#include "timbre/v1/timbre.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  timbre::v1::BlendRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  absl::StatusOr<timbre::RetrievalCall> call =
      timbre::ToRetrievalCall("fuzz", request.frames(), request.options());
  if (!call.ok()) return 0;
  const timbre::FrameMatrix& frames = call->frames;
  if (frames.rows != static_cast<int64_t>(request.frames().num_frames()) ||
      frames.dim != static_cast<int>(request.frames().dim()) || frames.dim < 1 ||
      frames.values.size() != static_cast<size_t>(frames.rows) * frames.dim) {
    std::abort();
  }
  for (float value : frames.values) {
    if (!std::isfinite(value)) std::abort();
  }
  // Encoding the decoded frames again gives the bytes that came.
  const timbre::DType dtype = request.frames().dtype() == timbre::v1::DTYPE_FLOAT16
                                  ? timbre::DType::kFloat16
                                  : timbre::DType::kFloat32;
  if (dtype == timbre::DType::kFloat32 &&
      timbre::EncodeFrames(dtype, frames.values) != request.frames().data()) {
    std::abort();
  }
  return 0;
}
