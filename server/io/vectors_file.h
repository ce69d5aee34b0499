// The vectors file: a speaker version's exact stored vectors beside an index whose own are
// compressed or normalised (FaissIndex's IndexLoadOptions::vectors_path, "vectors.f32").
//
// Format: raw little-endian float32, [count, dim] row-major in id order, no header; count and dim
// come from the index it belongs to, so a file is only checked against them.
//
// Thread-safe: the functions hold no state; concurrent writes of one path leave one of them.
#ifndef TIMBRE_SERVER_IO_VECTORS_FILE_H_
#define TIMBRE_SERVER_IO_VECTORS_FILE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace timbre {

// Writes `count` vectors of `dim` floats ([count, dim], row-major) to `path`, replacing it
// atomically and durably (ReplaceFileDurably, durable_write.h): `path` is either complete or
// untouched, and nothing is left behind on failure.
// Errors: INVALID_ARGUMENT for count < 0, dim < 1 or null vectors; RESOURCE_EXHAUSTED (disk
// full, quota) or INTERNAL (anything else, a missing directory too) with the OS reason.
absl::Status WriteVectorsFile(const std::string& path, const float* vectors, int64_t count,
                              int dim);

// Reads the vectors file `path`, which must hold `count` rows of `dim` finite floats, into
// [count, dim] values. Errors: NOT_FOUND if it is missing; INVALID_ARGUMENT for count < 0 or
// dim < 1, if it is not a regular file, naming the expected and the actual bytes when its size is
// not count * dim * 4, or naming the row and column of a NaN or infinite value; INTERNAL (or
// RESOURCE_EXHAUSTED) with the OS reason if it cannot be read.
absl::StatusOr<std::vector<float>> ReadVectorsFile(const std::string& path, int64_t count,
                                                   int dim);

}  // namespace timbre

#endif  // TIMBRE_SERVER_IO_VECTORS_FILE_H_
