// Feature files: the rules a HuBERT feature .npy file meets to enter the feature-set store, and
// reading its rows back.
//
// A feature file is a C-ordered [rows, dim] array of float32 (<f4) or float16 (<f2), dim 256
// (RVC v1) or 768 (RVC v2), at least one row and only finite values: what RVC writes to
// 3_feature256/ or 3_feature768/ (one file per audio slice) or as total_fea.npy.
//
// Part of FeatureSetStore; tested through feature_set_store_test.
// Thread-safe: free functions without state.
#ifndef TIMBRE_SERVER_BUILD_FEATURE_FILE_H_
#define TIMBRE_SERVER_BUILD_FEATURE_FILE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/io/npy_file.h"
#include "server/io/sha256.h"
#include "timbre/v1/feature_set_manifest.pb.h"

namespace timbre {

inline constexpr int kMaxFeatureFileNameLength = 255;

// OK if `name` can name an uploaded feature file: at most kMaxFeatureFileNameLength characters
// from [A-Za-z0-9._-], ending in ".npy", not starting with '.'. Such a name is one plain path
// component. Otherwise INVALID_ARGUMENT naming it and what is wrong.
absl::Status ValidateFeatureFileName(absl::string_view name);

// True for a supported feature dim: 256 or 768.
bool IsFeatureDim(int64_t dim);

// "float32" for "<f4", "float16" for "<f2", "" otherwise.
std::string FeatureDTypeName(const std::string& descr);

// Opens the feature file at `path` and checks its header. `label` names the file in errors;
// `digest` (optional) is fed every byte read, as NpyRowReaderOptions describes.
// Errors: those of NpyRowReader::Open; INVALID_ARGUMENT naming `label` for a shape that is not
// 2-D, a dim other than 256 or 768, or zero rows.
absl::StatusOr<std::unique_ptr<NpyRowReader>> OpenFeatureFile(const std::string& path,
                                                              const std::string& label,
                                                              Sha256* digest);

// Reads every remaining row of `reader` (from OpenFeatureFile) in blocks of about 4 MiB, into
// `out` (room for the remaining rows * dim floats) or, if `out` is null, only to check them.
// After each block calls `after_block(rows read so far)`; an error it returns stops the reading
// and is returned (e.g. a cancelled build). Errors: INVALID_ARGUMENT naming `label` and the first
// row and column holding NaN or an infinity; those of NpyRowReader::ReadRows.
absl::Status ReadFeatureRows(NpyRowReader& reader, absl::string_view label, float* out,
                             absl::FunctionRef<absl::Status(int64_t rows_read)> after_block);

// Checks the whole feature file at `path` (OpenFeatureFile, then ReadFeatureRows into nothing)
// and returns its manifest entry with rows, dim, dtype and bytes filled in, and sha256 too if
// `digest` is given (it must be fresh). Name, path and mtime are left to the caller.
// Errors: those of OpenFeatureFile and ReadFeatureRows.
absl::StatusOr<timbre::v1::FeatureFileManifest> CheckFeatureFile(const std::string& path,
                                                                 const std::string& label,
                                                                 Sha256* digest);

}  // namespace timbre

#endif  // TIMBRE_SERVER_BUILD_FEATURE_FILE_H_
