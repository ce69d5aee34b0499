#include "server/io/vectors_file.h"

#include <cmath>
#include <memory>

#include "absl/base/config.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/io/durable_write.h"
#include "server/io/posix_file.h"

#ifndef ABSL_IS_LITTLE_ENDIAN
#error "the vectors file format is little-endian float32, read and written as host floats"
#endif

namespace timbre {
namespace {

// A failed write is the server's problem, never the caller's: RESOURCE_EXHAUSTED when the disk
// or quota is full, INTERNAL otherwise (ErrnoStatus would make a missing directory NOT_FOUND).
absl::Status WriteFailure(const absl::Status& status) {
  if (absl::IsResourceExhausted(status)) return status;
  return absl::InternalError(status.message());
}

}  // namespace

absl::Status WriteVectorsFile(const std::string& path, const float* vectors, int64_t count,
                              int dim) {
  const std::string label = absl::StrCat("vectors file '", path, "'");
  if (count < 0 || dim < 1 || (count > 0 && vectors == nullptr)) {
    return absl::InvalidArgumentError(absl::StrCat("writing ", label, ": needs count >= 0 (is ",
                                                   count, "), dim >= 1 (is ", dim,
                                                   ") and vectors"));
  }
  const absl::Status written = ReplaceFileDurably(
      path,
      absl::string_view(reinterpret_cast<const char*>(vectors),
                        static_cast<size_t>(count) * dim * sizeof(float)),
      label);
  return written.ok() ? written : WriteFailure(written);
}

absl::StatusOr<std::vector<float>> ReadVectorsFile(const std::string& path, int64_t count,
                                                   int dim) {
  const std::string label = absl::StrCat("vectors file '", path, "'");
  if (count < 0 || dim < 1) {
    return absl::InvalidArgumentError(absl::StrCat("reading ", label, ": needs count >= 0 (is ",
                                                   count, ") and dim >= 1 (is ", dim, ")"));
  }
  absl::StatusOr<std::unique_ptr<InputFile>> file = InputFile::Open(path, label);
  if (!file.ok()) return file.status();
  const int64_t expected = count * dim * static_cast<int64_t>(sizeof(float));
  if ((*file)->size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        label, " has ", (*file)->size(), " bytes; the index's ", count, " vectors of dim ", dim,
        " need ", expected, " bytes (float32, no header)"));
  }
  std::vector<float> values(static_cast<size_t>(count) * dim);
  absl::Status read = (*file)->ReadExactly(reinterpret_cast<char*>(values.data()), expected);
  if (!read.ok()) return read;
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return absl::InvalidArgumentError(absl::StrCat(label, " has a NaN or infinite value in row ",
                                                     i / dim, ", column ", i % dim));
    }
  }
  return values;
}

}  // namespace timbre
