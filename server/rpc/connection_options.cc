#include "server/rpc/connection_options.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "grpc/grpc.h"

namespace timbre {
namespace {

constexpr int kMinMessageBytes = 1024;

int Milliseconds(absl::Duration duration) {
  return static_cast<int>(
      std::min<int64_t>(absl::ToInt64Milliseconds(duration), std::numeric_limits<int>::max()));
}

absl::Status CheckMessageLimit(const char* flag, int bytes) {
  if (bytes >= kMinMessageBytes) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(flag, " is ", bytes, "; it must be at least ", kMinMessageBytes, " bytes"));
}

absl::Status CheckPositive(const char* flag, absl::Duration duration) {
  if (duration >= absl::Milliseconds(1)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(flag, " is ", absl::FormatDuration(duration),
                                                 "; it must be at least 1ms (inf: never)"));
}

}  // namespace

absl::Status ValidateConnectionOptions(const ConnectionOptions& options) {
  for (absl::Status status :
       {CheckMessageLimit("--max_receive_message_bytes", options.max_receive_message_bytes),
        CheckMessageLimit("--max_send_message_bytes", options.max_send_message_bytes),
        CheckMessageLimit("--max_metadata_bytes", options.max_metadata_bytes),
        CheckPositive("--keepalive_time", options.keepalive_time),
        CheckPositive("--keepalive_timeout", options.keepalive_timeout),
        CheckPositive("--max_connection_age", options.max_connection_age),
        CheckPositive("--max_connection_idle", options.max_connection_idle)}) {
    if (!status.ok()) return status;
  }
  if (options.max_concurrent_streams < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--max_concurrent_streams is ",
                                                   options.max_concurrent_streams,
                                                   "; it must be at least 1"));
  }
  if (options.max_connection_age_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_connection_age_grace is ", absl::FormatDuration(options.max_connection_age_grace),
        "; it must not be negative"));
  }
  return absl::OkStatus();
}

std::vector<std::pair<std::string, int>> ConnectionChannelArguments(
    const ConnectionOptions& options) {
  std::vector<std::pair<std::string, int>> arguments;
  // gRPC reads INT_MAX as "never"; leaving the argument out would mean its default, 2 hours.
  arguments.emplace_back(GRPC_ARG_KEEPALIVE_TIME_MS,
                         options.keepalive_time == absl::InfiniteDuration()
                             ? std::numeric_limits<int>::max()
                             : Milliseconds(options.keepalive_time));
  arguments.emplace_back(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, Milliseconds(options.keepalive_timeout));
  if (options.max_connection_age != absl::InfiniteDuration()) {
    arguments.emplace_back(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                           Milliseconds(options.max_connection_age));
  }
  if (options.max_connection_age_grace != absl::InfiniteDuration()) {
    arguments.emplace_back(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                           Milliseconds(options.max_connection_age_grace));
  }
  if (options.max_connection_idle != absl::InfiniteDuration()) {
    arguments.emplace_back(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                           Milliseconds(options.max_connection_idle));
  }
  arguments.emplace_back(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams);
  arguments.emplace_back(GRPC_ARG_MAX_METADATA_SIZE, options.max_metadata_bytes);
  return arguments;
}

void ApplyConnectionOptions(const ConnectionOptions& options, grpc::ServerBuilder& builder) {
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  builder.SetMaxSendMessageSize(options.max_send_message_bytes);
  for (const auto& [name, value] : ConnectionChannelArguments(options)) {
    builder.AddChannelArgument(name, value);
  }
}

}  // namespace timbre
