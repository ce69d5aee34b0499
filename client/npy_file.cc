#include "client/npy_file.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace timbre {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

// Value of `key` in the header dict text, e.g. 'descr': '<f4' -> "'<f4'".
bool HeaderValue(absl::string_view header, absl::string_view key, std::string* value) {
  const std::string quoted = absl::StrCat("'", key, "'");
  size_t at = header.find(quoted);
  if (at == absl::string_view::npos) return false;
  at = header.find(':', at + quoted.size());
  if (at == absl::string_view::npos) return false;
  absl::string_view rest = absl::StripLeadingAsciiWhitespace(header.substr(at + 1));
  size_t end;
  if (!rest.empty() && rest[0] == '(') {
    end = rest.find(')');
    if (end == absl::string_view::npos) return false;
    ++end;
  } else if (!rest.empty() && (rest[0] == '\'' || rest[0] == '"')) {
    end = rest.find(rest[0], 1);
    if (end == absl::string_view::npos) return false;
    ++end;
  } else {
    end = rest.find_first_of(",}");
    if (end == absl::string_view::npos) return false;
  }
  *value = std::string(absl::StripAsciiWhitespace(rest.substr(0, end)));
  return true;
}

}  // namespace

int NpyItemSize(const std::string& descr) {
  if (descr == "<f4") return 4;
  if (descr == "<f2") return 2;
  return 0;
}

absl::StatusOr<NpyArray> ReadNpy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open '", path, "'"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string bytes = buffer.str();
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' is not a usable .npy file: ", why));
  };
  if (bytes.size() < 10 || bytes.compare(0, 6, kMagic, 6) != 0) return bad("bad magic string");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_length;
  size_t header_start;
  if (major == 1) {
    header_length = static_cast<unsigned char>(bytes[8]) |
                    (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return bad("truncated header");
    uint32_t length;
    std::memcpy(&length, bytes.data() + 8, 4);
    header_length = length;
    header_start = 12;
  } else {
    return bad(absl::StrCat("format version ", major, " is not supported"));
  }
  if (bytes.size() < header_start + header_length) return bad("truncated header");
  const absl::string_view header(bytes.data() + header_start, header_length);
  std::string descr, fortran, shape_text;
  if (!HeaderValue(header, "descr", &descr) || !HeaderValue(header, "fortran_order", &fortran) ||
      !HeaderValue(header, "shape", &shape_text)) {
    return bad("header lacks descr, fortran_order or shape");
  }
  NpyArray array;
  array.descr = std::string(absl::StripSuffix(absl::StripPrefix(descr, "'"), "'"));
  if (NpyItemSize(array.descr) == 0) {
    return bad(absl::StrCat("dtype ", array.descr, " is not float32 (<f4) or float16 (<f2)"));
  }
  if (fortran != "False") return bad("Fortran-ordered arrays are not supported; save in C order");
  absl::string_view dims = absl::StripSuffix(absl::StripPrefix(shape_text, "("), ")");
  int64_t count = 1;
  for (absl::string_view part : absl::StrSplit(dims, ',', absl::SkipWhitespace())) {
    int64_t dim;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &dim) || dim < 0) {
      return bad(absl::StrCat("bad shape ", shape_text));
    }
    array.shape.push_back(dim);
    count *= dim;
  }
  const size_t expected = static_cast<size_t>(count) * NpyItemSize(array.descr);
  const size_t available = bytes.size() - header_start - header_length;
  if (available != expected) {
    return bad(absl::StrCat("shape ", shape_text, " needs ", expected, " data bytes, the file has ",
                            available));
  }
  array.data = bytes.substr(header_start + header_length);
  return array;
}

absl::Status WriteNpy(const std::string& path, const NpyArray& array) {
  const int item = NpyItemSize(array.descr);
  if (item == 0) return absl::InvalidArgumentError(absl::StrCat("unsupported dtype ", array.descr));
  int64_t count = 1;
  for (int64_t dim : array.shape) count *= dim;
  if (static_cast<size_t>(count) * item != array.data.size()) {
    return absl::InvalidArgumentError("npy data size does not match its shape");
  }
  std::string shape = absl::StrJoin(array.shape, ", ");
  if (array.shape.size() == 1) shape += ",";
  std::string header = absl::StrCat("{'descr': '", array.descr,
                                    "', 'fortran_order': False, 'shape': (", shape, "), }");
  // Pad so that the data starts on a 64-byte boundary; the header ends with '\n'.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::InternalError(absl::StrCat("cannot write '", path, "'"));
  out.write(kMagic, 6);
  out.put(1);
  out.put(0);
  out.put(static_cast<char>(header.size() & 0xff));
  out.put(static_cast<char>(header.size() >> 8));
  out << header;
  out.write(array.data.data(), static_cast<std::streamsize>(array.data.size()));
  if (!out.flush()) return absl::InternalError(absl::StrCat("writing '", path, "' failed"));
  return absl::OkStatus();
}

}  // namespace timbre
