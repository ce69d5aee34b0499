#include "server/build/feature_file.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace timbre {
namespace {

// Rows per block are chosen so that a block of float32 values takes about this many bytes.
constexpr int64_t kBlockBytes = int64_t{4} << 20;

absl::Status NotAFeatureFile(absl::string_view label, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("'", label, "' is not a usable feature file: ", why));
}

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

}  // namespace

absl::Status ValidateFeatureFileName(absl::string_view name) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("bad feature file name '", name, "': ", why));
  };
  if (name.size() > kMaxFeatureFileNameLength) {
    return bad(absl::StrCat("longer than ", kMaxFeatureFileNameLength, " characters"));
  }
  if (!absl::EndsWith(name, ".npy")) return bad("it must end in .npy");
  if (name[0] == '.') return bad("it must not start with '.'");
  for (char c : name) {
    if (!IsNameChar(c)) {
      return bad("use only letters, digits, '.', '_' and '-' (a plain file name, no path)");
    }
  }
  return absl::OkStatus();
}

bool IsFeatureDim(int64_t dim) { return dim == 256 || dim == 768; }

std::string FeatureDTypeName(const std::string& descr) {
  if (descr == "<f4") return "float32";
  if (descr == "<f2") return "float16";
  return "";
}

absl::StatusOr<std::unique_ptr<NpyRowReader>> OpenFeatureFile(const std::string& path,
                                                              const std::string& label,
                                                              Sha256* digest) {
  absl::StatusOr<std::unique_ptr<NpyRowReader>> reader =
      NpyRowReader::Open(path, NpyRowReaderOptions{label, digest});
  if (!reader.ok()) return reader.status();
  const std::vector<int64_t>& shape = (*reader)->header().shape;
  const std::string shape_text = absl::StrCat("(", absl::StrJoin(shape, ", "), ")");
  if (shape.size() != 2) {
    return NotAFeatureFile(label, absl::StrCat("shape ", shape_text, " is not 2-D [rows, dim]"));
  }
  if (!IsFeatureDim(shape[1])) {
    return NotAFeatureFile(
        label, absl::StrCat("dim ", shape[1], " (shape ", shape_text,
                            ") is neither 256 (RVC v1) nor 768 (RVC v2) HuBERT features"));
  }
  if (shape[0] < 1) return NotAFeatureFile(label, "it holds no rows");
  return reader;
}

absl::Status ReadFeatureRows(NpyRowReader& reader, absl::string_view label, float* out,
                             absl::FunctionRef<absl::Status(int64_t rows_read)> after_block) {
  const int64_t dim = reader.row_size();
  const int64_t block_rows = std::max<int64_t>(1, kBlockBytes / (dim * 4));
  std::vector<float> scratch;
  if (out == nullptr) {
    scratch.resize(static_cast<size_t>(std::min(block_rows, reader.rows()) * dim));
  }
  while (reader.rows_read() < reader.rows()) {
    const int64_t first = reader.rows_read();
    const int64_t count = std::min(block_rows, reader.rows() - first);
    float* block = out != nullptr ? out : scratch.data();
    if (absl::Status read = reader.ReadRows(count, block); !read.ok()) return read;
    for (int64_t i = 0; i < count * dim; ++i) {
      if (!std::isfinite(block[i])) {
        return NotAFeatureFile(
            label, absl::StrCat("row ", first + i / dim, " holds ", block[i], " at column ",
                                i % dim, "; values must be finite"));
      }
    }
    if (out != nullptr) out += count * dim;
    if (absl::Status go_on = after_block(reader.rows_read()); !go_on.ok()) return go_on;
  }
  return absl::OkStatus();
}

absl::StatusOr<timbre::v1::FeatureFileManifest> CheckFeatureFile(const std::string& path,
                                                                 const std::string& label,
                                                                 Sha256* digest) {
  absl::StatusOr<std::unique_ptr<NpyRowReader>> reader = OpenFeatureFile(path, label, digest);
  if (!reader.ok()) return reader.status();
  if (absl::Status read =
          ReadFeatureRows(**reader, label, nullptr, [](int64_t) { return absl::OkStatus(); });
      !read.ok()) {
    return read;
  }
  timbre::v1::FeatureFileManifest file;
  file.set_rows(static_cast<uint64_t>((*reader)->rows()));
  file.set_dim(static_cast<uint32_t>((*reader)->row_size()));
  file.set_dtype(FeatureDTypeName((*reader)->header().descr));
  file.set_bytes(static_cast<uint64_t>((*reader)->file_bytes()));
  if (digest != nullptr) file.set_sha256(digest->HexDigest());
  return file;
}

}  // namespace timbre
