#include "client/cli/frame_flags.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "client/cli/cli_flags.h"
#include "server/io/npy_file.h"
#include "timbre/timbre_client.h"

namespace timbre {

v1::RetrievalOptions RetrievalOptionsFromFlags() {
  v1::RetrievalOptions options;
  options.set_k(static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_k))));
  options.set_nprobe(static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_nprobe))));
  options.set_k_factor(static_cast<uint32_t>(std::max(0, absl::GetFlag(FLAGS_k_factor))));
  if (absl::GetFlag(FLAGS_index_rate) >= 0) {
    options.set_index_rate(static_cast<float>(absl::GetFlag(FLAGS_index_rate)));
  }
  return options;
}

absl::StatusOr<v1::Frames> ReadInputFrames() {
  const std::string input = absl::GetFlag(FLAGS_input);
  absl::StatusOr<NpyArray> array = ReadNpy(input);
  if (!array.ok()) return array.status();
  if (array->shape.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat("'", input, "' has ", array->shape.size(),
                                                   " dimensions; expected [frames, dim]"));
  }
  return MakeFrames(array->descr == "<f2" ? v1::DTYPE_FLOAT16 : v1::DTYPE_FLOAT32,
                    static_cast<uint32_t>(array->shape[0]), static_cast<uint32_t>(array->shape[1]),
                    std::move(array->data));
}

}  // namespace timbre
