// Protobuf messages kept in files as JSON (protobuf's JSON mapping with proto field names), the
// way the stores keep their metadata: a speaker version's metadata.json, a feature set's
// manifest.json.
//
// Thread-safe: free functions without state.
#ifndef TIMBRE_SERVER_IO_JSON_PROTO_FILE_H_
#define TIMBRE_SERVER_IO_JSON_PROTO_FILE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace timbre {

// Largest JSON file read, in bytes (a manifest of 10,000 files is about 2 MB).
inline constexpr int64_t kMaxJsonProtoFileBytes = 64 << 20;

// Reads the JSON file `path` into `message`, ignoring fields it does not know (newer writers may
// add some). `what` names the contents in errors, e.g. "metadata".
// Errors: FAILED_PRECONDITION naming the file if it cannot be read ("cannot read '<path>'": also
// when it is not a regular file, such as a FIFO, or holds more than kMaxJsonProtoFileBytes) or
// is not valid JSON for the message ("'<path>' is not valid <what>: <reason>").
absl::Status ReadJsonProtoFile(const std::string& path, absl::string_view what,
                               google::protobuf::Message* message);

// Writes `message` as indented JSON with proto field names (snake_case) to `path`, replacing it
// atomically and durably (ReplaceFileDurably, durable_write.h). Errors: INTERNAL if the message
// cannot be encoded; those of ReplaceFileDurably, e.g. NOT_FOUND for a missing directory,
// RESOURCE_EXHAUSTED for a full disk.
absl::Status WriteJsonProtoFile(const std::string& path, const google::protobuf::Message& message);

}  // namespace timbre

#endif  // TIMBRE_SERVER_IO_JSON_PROTO_FILE_H_
