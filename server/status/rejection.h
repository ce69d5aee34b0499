// Rejection: a mark on a status saying the server refused the request without serving it, and
// why, so that the RPC layer can count refusals by their real reason.
//
// The code of a status does not say it alone: RESOURCE_EXHAUSTED is a full search queue
// (overloaded, retry later), a speaker whose index alone exceeds the memory budget (too large,
// retrying will not help) or a full disk (the server's own failure, not a refusal at all). The
// unit that refuses marks its status with Rejected(); the mark is an absl::Status payload, so it
// travels with the status through every layer that passes the status on (use WithMessagePrefix to
// reword one without losing it). Unmarked statuses are not refusals as far as this unit knows
// (the RPC layer also counts a few codes that are refusals whoever returns them, such as
// INVALID_ARGUMENT).
//
// Thread-safe: free functions.
#ifndef TIMBRE_SERVER_STATUS_REJECTION_H_
#define TIMBRE_SERVER_STATUS_REJECTION_H_

#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace timbre {

enum class RejectionReason {
  // The server has no room for the request now: a full queue (the search queue, the build
  // queue) or memory held by loads in progress. The same request may succeed later.
  kOverloaded,
  // The call's deadline passed while it waited; it was not served.
  kDeadline,
  // The request exceeds a limit the operator set: a speaker whose index alone exceeds the memory
  // budget, an upload beyond the largest upload. Retrying does not help.
  kTooLarge,
};

// Every reason, in declaration order.
inline constexpr RejectionReason kRejectionReasons[] = {
    RejectionReason::kOverloaded, RejectionReason::kDeadline, RejectionReason::kTooLarge};

// The reason's short name: "overloaded", "deadline", "too_large" (also its metric label).
absl::string_view RejectionReasonName(RejectionReason reason);

// `status` (an error) marked as a refusal for `reason`; its code and message are unchanged.
absl::Status Rejected(absl::Status status, RejectionReason reason);

// The reason `status` was marked with by Rejected(); nullopt for an unmarked status.
std::optional<RejectionReason> RejectionReasonOf(const absl::Status& status);

// `status` with `prefix` put before its message, keeping its code and payloads (the rejection
// mark among them). OK stays OK.
absl::Status WithMessagePrefix(absl::string_view prefix, const absl::Status& status);

}  // namespace timbre

#endif  // TIMBRE_SERVER_STATUS_REJECTION_H_
