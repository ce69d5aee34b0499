// The `timbre` CLI's commands for feature sets and index builds: each prints its result to stdout
// (progress to stderr) and returns the process exit code (see command_status.h).
//
// Thread-compatible.
#ifndef TIMBRE_CLIENT_CLI_BUILD_COMMANDS_H_
#define TIMBRE_CLIENT_CLI_BUILD_COMMANDS_H_

#include <string>

#include "client/cli/version_wait.h"
#include "timbre/builder_client.h"
#include "timbre/v1/index_builder.pb.h"

namespace timbre {

// Uploads a feature directory or .npy file with a progress bar; prints the feature set.
int UploadCommand(const BuilderClient& client, const std::string& path, int64_t chunk_bytes);

// Registers a directory on the server as a feature set; prints it.
int ImportCommand(const BuilderClient& client, const std::string& server_path);

// Lists the server's feature sets.
int FeatureSetsCommand(const BuilderClient& client);

// Starts a build. Unless `detach`, follows it live and ends with its report; then, with `wait`,
// waits until every replica that holds the speaker serves the new version (see
// version_wait.h) and says so. Exit 0 only if the build succeeded (and the wait, if any).
int BuildCommand(const BuilderClient& client, const timbre::v1::BuildIndexRequest& request,
                 bool detach, const VersionWaitOptions* wait);

// Lists jobs, newest first.
int JobsCommand(const BuilderClient& client);

// Shows one job (following it live with `watch`).
int JobCommand(const BuilderClient& client, const std::string& id, bool watch);

// Cancels a job.
int CancelCommand(const BuilderClient& client, const std::string& id);

// The recipe a --recipe value names: "rvc", "fastscan", "auto", or else a faiss index_factory
// string (recipe kind factory).
timbre::v1::Recipe RecipeNamed(const std::string& name);

// The job's report as text: stages with their times, and the auto recipe's candidates side by
// side with the kept one marked.
std::string ReportText(const timbre::v1::BuildJob& job);

}  // namespace timbre

#endif  // TIMBRE_CLIENT_CLI_BUILD_COMMANDS_H_
