// Frame codec: packed little-endian float32 / float16 bytes <-> float32 matrices.
//
// Frames travel as a row-major [num_frames, dim] matrix of float32 or IEEE binary16 values. The
// server computes in float32; float16 input is widened exactly and float16 output is rounded to
// nearest-even, as numpy's astype(np.float16) does.
//
// Thread-safe: free functions without state.
#ifndef TIMBRE_SERVER_IO_FRAME_CODEC_H_
#define TIMBRE_SERVER_IO_FRAME_CODEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/io/float16.h"  // HalfToFloat, FloatToHalf

namespace timbre {

enum class DType { kFloat32, kFloat16 };

// Bytes per value of `dtype`: 4 or 2.
int BytesPerValue(DType dtype);

// A dense row-major float32 matrix of frames. Thread-compatible.
struct FrameMatrix {
  int64_t rows = 0;
  int dim = 0;
  std::vector<float> values;  // rows * dim values

  const float* row(int64_t i) const { return values.data() + i * dim; }
  float* row(int64_t i) { return values.data() + i * dim; }
};

// Decodes `data` as [rows, dim] values of `dtype`.
// Errors (INVALID_ARGUMENT, naming the problem): rows or dim < 1; a byte length other than
// rows * dim * BytesPerValue(dtype); a NaN or infinite value (the message gives frame and column).
absl::StatusOr<FrameMatrix> DecodeFrames(DType dtype, int64_t rows, int dim,
                                         absl::string_view data);

// Encodes `values` as packed little-endian `dtype` bytes. Values outside float16's range become
// +-inf when encoding float16.
std::string EncodeFrames(DType dtype, absl::Span<const float> values);

}  // namespace timbre

#endif  // TIMBRE_SERVER_IO_FRAME_CODEC_H_
