// BuilderClient: a synchronous C++ client of the timbre.v1.IndexBuilder service: uploads feature
// sets, starts builds and follows them.
//
// Every call returns absl::Status / absl::StatusOr with the server's gRPC code and message.
//
// Thread-safe: calls may be made concurrently (they share one channel).
#ifndef TIMBRE_CLIENT_BUILDER_CLIENT_H_
#define TIMBRE_CLIENT_BUILDER_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "timbre/timbre_client.h"
#include "timbre/v1/index_builder.grpc.pb.h"

namespace timbre {

// The .npy files an upload of `path` sends: `path` itself if it is a file, else every *.npy file
// directly inside the directory, sorted by name. Errors: NOT_FOUND for a missing path;
// INVALID_ARGUMENT for a directory without .npy files.
absl::StatusOr<std::vector<std::string>> FeatureFilesAt(const std::string& path);

class BuilderClient {
 public:
  // Errors: as MakeChannel.
  static absl::StatusOr<std::unique_ptr<BuilderClient>> Create(TimbreClient::Options options);

  // Uploads the feature files at `path` (see FeatureFilesAt) in chunks of `chunk_bytes`, each file
  // announced with its size and SHA-256. `progress(sent, total)` is called after every chunk,
  // in bytes. No deadline: a large set takes as long as the network needs.
  // Errors: those of FeatureFilesAt; NOT_FOUND (missing), INVALID_ARGUMENT (not a regular file)
  // or INTERNAL (read error) for unreadable files; the server's.
  absl::StatusOr<timbre::v1::FeatureSet> Upload(
      const std::string& path, int64_t chunk_bytes,
      absl::FunctionRef<void(int64_t sent, int64_t total)> progress) const;

  absl::StatusOr<timbre::v1::FeatureSet> Import(const std::string& server_path) const;
  absl::StatusOr<timbre::v1::ListFeatureSetsResponse> ListFeatureSets() const;
  absl::Status DeleteFeatureSet(const std::string& id) const;
  absl::StatusOr<timbre::v1::BuildJob> Build(const timbre::v1::BuildIndexRequest& request) const;
  absl::StatusOr<timbre::v1::BuildJob> GetJob(const std::string& id) const;
  absl::StatusOr<timbre::v1::ListJobsResponse> ListJobs() const;
  absl::StatusOr<timbre::v1::BuildJob> CancelJob(const std::string& id) const;

  // Follows a job: `on_update` gets every record the server streams; returns the last one (a
  // final state). No deadline. Errors: the server's; UNAVAILABLE if the stream breaks first.
  absl::StatusOr<timbre::v1::BuildJob> WatchJob(
      const std::string& id, absl::FunctionRef<void(const timbre::v1::BuildJob&)> on_update) const;

 private:
  BuilderClient(TimbreClient::Options options, std::shared_ptr<grpc::Channel> channel);
  // One unary call of `method` with the options' deadline.
  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(
      grpc::Status (timbre::v1::IndexBuilder::Stub::*method)(grpc::ClientContext*,
                                                            const Request&, Response*),
      const Request& request) const;

  const TimbreClient::Options options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<timbre::v1::IndexBuilder::Stub> stub_;
};

}  // namespace timbre

#endif  // TIMBRE_CLIENT_BUILDER_CLIENT_H_
