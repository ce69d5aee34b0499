#include "server/io/json_proto_file.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "server/io/durable_write.h"
#include "server/io/posix_file.h"

namespace timbre {

absl::Status ReadJsonProtoFile(const std::string& path, absl::string_view what,
                               google::protobuf::Message* message) {
  // A regular file only: a FIFO or device in its place would block or never end.
  absl::StatusOr<std::string> text = ReadSmallFile(path, kMaxJsonProtoFileBytes);
  if (!text.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read '", path, "': ", text.status().message()));
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  const auto parsed = google::protobuf::util::JsonStringToMessage(*text, message, options);
  if (!parsed.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", path, "' is not valid ", what, ": ", parsed.message().as_string()));
  }
  return absl::OkStatus();
}

absl::Status WriteJsonProtoFile(const std::string& path, const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions print;
  print.add_whitespace = true;
  print.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(message, &json, print).ok()) {
    return absl::InternalError(absl::StrCat("cannot encode ", message.GetTypeName(), " as JSON"));
  }
  return ReplaceFileDurably(path, json);
}

}  // namespace timbre
