#include "server/status/rejection.h"

#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace timbre {
namespace {

// The payload's type URL; its value is the reason's name.
constexpr absl::string_view kRejectionPayload = "type.timbre/timbre.Rejection";

}  // namespace

absl::string_view RejectionReasonName(RejectionReason reason) {
  switch (reason) {
    case RejectionReason::kOverloaded: return "overloaded";
    case RejectionReason::kDeadline: return "deadline";
    case RejectionReason::kTooLarge: return "too_large";
  }
  return "unknown";
}

absl::Status Rejected(absl::Status status, RejectionReason reason) {
  status.SetPayload(kRejectionPayload, absl::Cord(RejectionReasonName(reason)));
  return status;
}

std::optional<RejectionReason> RejectionReasonOf(const absl::Status& status) {
  const auto payload = status.GetPayload(kRejectionPayload);  // absl::optional<absl::Cord>
  if (!payload.has_value()) return std::nullopt;
  for (RejectionReason reason : kRejectionReasons) {
    if (*payload == RejectionReasonName(reason)) return reason;
  }
  return std::nullopt;
}

absl::Status WithMessagePrefix(absl::string_view prefix, const absl::Status& status) {
  if (status.ok()) return status;
  absl::Status prefixed(status.code(), absl::StrCat(prefix, status.message()));
  status.ForEachPayload([&prefixed](absl::string_view type_url, const absl::Cord& payload) {
    prefixed.SetPayload(type_url, payload);
  });
  return prefixed;
}

}  // namespace timbre
