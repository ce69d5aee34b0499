#include "server/io/npy_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/io/durable_write.h"
#include "server/io/float16.h"

namespace timbre {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
// numpy writes headers of a few hundred bytes; longer ones are refused before being allocated.
constexpr size_t kMaxHeaderLength = size_t{1} << 20;

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "timbre assumes a little-endian host");

absl::Status NotUsable(absl::string_view label, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("'", label, "' is not a usable .npy file: ", why));
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("(", absl::StrJoin(shape, ", "), shape.size() == 1 ? ",)" : ")");
}

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

// Parses the header dict, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
absl::Status ParseHeaderDict(absl::string_view text, absl::string_view label, NpyHeader* header) {
  std::string descr, fortran, shape_text;
  if (!HeaderValue(text, "descr", &descr) || !HeaderValue(text, "fortran_order", &fortran) ||
      !HeaderValue(text, "shape", &shape_text)) {
    return NotUsable(label, "header lacks descr, fortran_order or shape");
  }
  header->descr = std::string(absl::StripSuffix(absl::StripPrefix(descr, "'"), "'"));
  if (fortran != "False" && fortran != "True") {
    return NotUsable(label, absl::StrCat("bad fortran_order ", fortran));
  }
  header->fortran_order = fortran == "True";
  if (!absl::StartsWith(shape_text, "(")) {
    return NotUsable(label, absl::StrCat("bad shape ", shape_text));
  }
  absl::string_view dims = absl::StripSuffix(absl::StripPrefix(shape_text, "("), ")");
  for (absl::string_view part : absl::StrSplit(dims, ',', absl::SkipWhitespace())) {
    int64_t dim;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &dim) || dim < 0) {
      return NotUsable(label, absl::StrCat("bad shape ", shape_text));
    }
    header->shape.push_back(dim);
  }
  return absl::OkStatus();
}

// Reads up to `size` bytes; fewer only at the end of the file.
absl::StatusOr<size_t> ReadUpTo(int fd, char* out, size_t size, absl::string_view label) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = read(fd, out + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::InternalError(absl::StrCat("reading '", label, "': ", std::strerror(errno)));
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

// Reads exactly `size` bytes, or fails naming the file as ending early.
absl::Status ReadExactly(int fd, char* out, size_t size, absl::string_view label) {
  absl::StatusOr<size_t> got = ReadUpTo(fd, out, size, label);
  if (!got.ok()) return got.status();
  if (*got != size) {
    return NotUsable(label, "the file ended early; was it changed while being read?");
  }
  return absl::OkStatus();
}

// Reads the magic string and header at the start of `fd`, feeding the bytes to `digest` if set.
absl::StatusOr<NpyHeader> ReadHeader(int fd, absl::string_view label, Sha256* digest) {
  char prefix[12];
  absl::StatusOr<size_t> got = ReadUpTo(fd, prefix, 10, label);
  if (!got.ok()) return got.status();
  if (*got < 6 || std::memcmp(prefix, kMagic, 6) != 0) return NotUsable(label, "bad magic string");
  if (*got < 10) return NotUsable(label, "truncated header");
  const int major = static_cast<unsigned char>(prefix[6]);
  size_t header_length;
  size_t header_start;
  if (major == 1) {
    header_length = static_cast<unsigned char>(prefix[8]) |
                    (static_cast<size_t>(static_cast<unsigned char>(prefix[9])) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    got = ReadUpTo(fd, prefix + 10, 2, label);
    if (!got.ok()) return got.status();
    if (*got < 2) return NotUsable(label, "truncated header");
    uint32_t length;
    std::memcpy(&length, prefix + 8, 4);
    header_length = length;
    header_start = 12;
  } else {
    return NotUsable(label, absl::StrCat("format version ", major, " is not supported"));
  }
  if (header_length > kMaxHeaderLength) {
    return NotUsable(label, absl::StrCat("header of ", header_length, " bytes is too long"));
  }
  std::string text(header_length, '\0');
  got = ReadUpTo(fd, text.data(), header_length, label);
  if (!got.ok()) return got.status();
  if (*got < header_length) return NotUsable(label, "truncated header");
  if (digest != nullptr) {
    digest->Update(absl::string_view(prefix, header_start));
    digest->Update(text);
  }
  NpyHeader header;
  header.data_offset = static_cast<int64_t>(header_start + header_length);
  if (absl::Status parsed = ParseHeaderDict(text, label, &header); !parsed.ok()) return parsed;
  return header;
}

// Checks that timbre can read the values of a file of `file_bytes` bytes with `header`;
// returns the number of values.
absl::StatusOr<int64_t> CheckUsable(const NpyHeader& header, int64_t file_bytes,
                                    absl::string_view label) {
  const int item = NpyItemSize(header.descr);
  if (item == 0) {
    return NotUsable(
        label, absl::StrCat("dtype ", header.descr, " is not float32 (<f4) or float16 (<f2)"));
  }
  if (header.fortran_order) {
    return NotUsable(label, "Fortran-ordered arrays are not supported; save in C order");
  }
  int64_t count = 1;
  for (int64_t dim : header.shape) {
    if (dim != 0 && count > std::numeric_limits<int64_t>::max() / item / dim) {
      return NotUsable(label, absl::StrCat("shape ", ShapeText(header.shape), " is too large"));
    }
    count *= dim;
  }
  const int64_t expected = count * item;
  const int64_t available = file_bytes - header.data_offset;
  if (available != expected) {
    return NotUsable(label, absl::StrCat("shape ", ShapeText(header.shape), " needs ", expected,
                                         " data bytes, the file has ", available));
  }
  return count;
}

// An open .npy file whose header has been read; closes the file unless released.
struct OpenedNpy {
  OpenedNpy() = default;
  OpenedNpy(OpenedNpy&& other) noexcept
      : fd(std::exchange(other.fd, -1)),
        header(std::move(other.header)),
        file_bytes(other.file_bytes) {}
  OpenedNpy& operator=(OpenedNpy&&) = delete;
  ~OpenedNpy() {
    if (fd >= 0) close(fd);
  }

  int fd = -1;
  NpyHeader header;
  int64_t file_bytes = 0;
};

absl::StatusOr<OpenedNpy> OpenNpy(const std::string& path, absl::string_view label,
                                  Sha256* digest) {
  OpenedNpy file;
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer (it is then refused
  // as not regular). Reads of a regular file ignore it.
  file.fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (file.fd < 0) {
    return absl::NotFoundError(absl::StrCat("cannot open '", label, "': ", std::strerror(errno)));
  }
  struct stat info;
  if (fstat(file.fd, &info) != 0) {
    return absl::InternalError(absl::StrCat("stat '", label, "': ", std::strerror(errno)));
  }
  if (!S_ISREG(info.st_mode)) return NotUsable(label, "not a regular file");
  file.file_bytes = info.st_size;
  absl::StatusOr<NpyHeader> header = ReadHeader(file.fd, label, digest);
  if (!header.ok()) return header.status();
  file.header = *std::move(header);
  return file;
}

}  // namespace

int NpyItemSize(const std::string& descr) {
  if (descr == "<f4") return 4;
  if (descr == "<f2") return 2;
  return 0;
}

absl::StatusOr<NpyHeader> ReadNpyHeader(const std::string& path) {
  absl::StatusOr<OpenedNpy> file = OpenNpy(path, path, nullptr);
  if (!file.ok()) return file.status();
  return std::move(file->header);
}

absl::StatusOr<NpyArray> ReadNpy(const std::string& path) {
  absl::StatusOr<OpenedNpy> file = OpenNpy(path, path, nullptr);
  if (!file.ok()) return file.status();
  absl::StatusOr<int64_t> count = CheckUsable(file->header, file->file_bytes, path);
  if (!count.ok()) return count.status();
  NpyArray array;
  array.descr = file->header.descr;
  array.shape = file->header.shape;
  array.data.resize(static_cast<size_t>(*count) * NpyItemSize(array.descr));
  if (absl::Status read = ReadExactly(file->fd, array.data.data(), array.data.size(), path);
      !read.ok()) {
    return read;
  }
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
  std::string header =
      absl::StrCat("{'descr': '", array.descr,
                   "', 'fortran_order': False, 'shape': ", ShapeText(array.shape), ", }");
  // Pad so that the data starts on a 64-byte boundary; the header ends with '\n'.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string preamble(kMagic, 6);
  preamble.push_back(1);
  preamble.push_back(0);
  preamble.push_back(static_cast<char>(header.size() & 0xff));
  preamble.push_back(static_cast<char>(header.size() >> 8));
  preamble.append(header);
  return ReplaceFileDurablyWith(path, "", [&](OutputFile& file) {
    if (absl::Status written = file.Append(preamble); !written.ok()) return written;
    return file.Append(array.data);
  });
}

absl::StatusOr<std::unique_ptr<NpyRowReader>> NpyRowReader::Open(const std::string& path,
                                                                 NpyRowReaderOptions options) {
  if (options.label.empty()) options.label = path;
  absl::StatusOr<OpenedNpy> file = OpenNpy(path, options.label, options.digest);
  if (!file.ok()) return file.status();
  absl::StatusOr<int64_t> count = CheckUsable(file->header, file->file_bytes, options.label);
  if (!count.ok()) return count.status();
  if (file->header.shape.empty()) return NotUsable(options.label, "a 0-d array has no rows");
  int64_t row_size = 1;
  for (size_t i = 1; i < file->header.shape.size(); ++i) row_size *= file->header.shape[i];
  const int fd = std::exchange(file->fd, -1);
  return std::unique_ptr<NpyRowReader>(new NpyRowReader(fd, std::move(file->header), row_size,
                                                        file->file_bytes, std::move(options)));
}

NpyRowReader::NpyRowReader(int fd, NpyHeader header, int64_t row_size, int64_t file_bytes,
                           NpyRowReaderOptions options)
    : fd_(fd),
      header_(std::move(header)),
      row_size_(row_size),
      file_bytes_(file_bytes),
      options_(std::move(options)) {}

NpyRowReader::~NpyRowReader() { close(fd_); }

absl::Status NpyRowReader::ReadRows(int64_t count, float* out) {
  if (count < 0 || count > rows() - rows_read_) {
    return absl::OutOfRangeError(absl::StrCat("'", options_.label, "': asked for ", count,
                                              " rows, ", rows() - rows_read_, " remain"));
  }
  const size_t values = static_cast<size_t>(count * row_size_);
  char* raw = reinterpret_cast<char*>(out);
  if (header_.descr == "<f2") {
    buffer_.resize(values * 2);
    raw = buffer_.data();
  }
  const size_t bytes = values * NpyItemSize(header_.descr);
  if (absl::Status read = ReadExactly(fd_, raw, bytes, options_.label); !read.ok()) return read;
  if (options_.digest != nullptr) options_.digest->Update(absl::string_view(raw, bytes));
  if (header_.descr == "<f2") {
    for (size_t i = 0; i < values; ++i) {
      uint16_t half;
      std::memcpy(&half, raw + 2 * i, 2);
      out[i] = HalfToFloat(half);
    }
  }
  rows_read_ += count;
  return absl::OkStatus();
}

}  // namespace timbre
