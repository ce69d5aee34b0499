// ServerRole: which gRPC services one timbre process offers, so that a cluster can keep index
// builds off the replicas that take real-time traffic.
//
//   all      timbre.v1.Timbre and timbre.v1.IndexBuilder (one process does everything)
//   serving  timbre.v1.Timbre only; builds run elsewhere
//   builder  timbre.v1.IndexBuilder only; it publishes versions the serving replicas pick up
//
// Every role offers grpc.health.v1 (reporting only the services it offers) and reflection. A
// call for a service the role does not offer is refused with UNIMPLEMENTED naming the role and
// the service to call elsewhere (RoleRefusalService), instead of gRPC's bare "method not found".
//
// Thread-safe.
#ifndef TIMBRE_SERVER_RPC_SERVER_ROLE_H_
#define TIMBRE_SERVER_RPC_SERVER_ROLE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/generic/async_generic_service.h"

namespace timbre {

enum class ServerRole { kAll, kServing, kBuilder };

// "all", "serving" or "builder" to a role. Errors: INVALID_ARGUMENT naming the value and the
// three roles.
absl::StatusOr<ServerRole> ParseServerRole(absl::string_view name);
absl::string_view ServerRoleName(ServerRole role);

// Whether `role` offers timbre.v1.Timbre, and timbre.v1.IndexBuilder.
inline bool ServesSpeakers(ServerRole role) { return role != ServerRole::kBuilder; }
inline bool ServesBuilds(ServerRole role) { return role != ServerRole::kServing; }

// Answers every call no registered service handles with UNIMPLEMENTED: "this replica runs
// --role=ROLE and does not serve '/pkg.Service/Method'; ...". Register it with
// ServerBuilder::RegisterCallbackGenericService.
class RoleRefusalService final : public grpc::CallbackGenericService {
 public:
  explicit RoleRefusalService(ServerRole role) : role_(role) {}
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* context) override;

 private:
  const ServerRole role_;
};

}  // namespace timbre

#endif  // TIMBRE_SERVER_RPC_SERVER_ROLE_H_
