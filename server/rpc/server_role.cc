#include "server/rpc/server_role.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace timbre {
namespace {

// Ends its call at once with `status`, then deletes itself.
class RefusingReactor final : public grpc::ServerGenericBidiReactor {
 public:
  explicit RefusingReactor(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

absl::StatusOr<ServerRole> ParseServerRole(absl::string_view name) {
  if (name == "all") return ServerRole::kAll;
  if (name == "serving") return ServerRole::kServing;
  if (name == "builder") return ServerRole::kBuilder;
  return absl::InvalidArgumentError(
      absl::StrCat("--role is '", name, "'; use all, serving or builder"));
}

absl::string_view ServerRoleName(ServerRole role) {
  switch (role) {
    case ServerRole::kAll: return "all";
    case ServerRole::kServing: return "serving";
    case ServerRole::kBuilder: return "builder";
  }
  return "unknown";
}

grpc::ServerGenericBidiReactor* RoleRefusalService::CreateReactor(
    grpc::GenericCallbackServerContext* context) {
  const std::string& method = context->method();
  std::string where;
  if (absl::StartsWith(method, "/timbre.v1.Timbre/")) {
    where = "; send timbre.v1.Timbre calls to a replica with --role=serving or all";
  } else if (absl::StartsWith(method, "/timbre.v1.IndexBuilder/")) {
    where = "; send timbre.v1.IndexBuilder calls to the replica with --role=builder or all";
  }
  return new RefusingReactor(grpc::Status(
      grpc::StatusCode::UNIMPLEMENTED,
      absl::StrCat("this replica runs --role=", ServerRoleName(role_), " and does not serve '",
                   method, "'", where)));
}

}  // namespace timbre
