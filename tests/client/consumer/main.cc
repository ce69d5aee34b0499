// Uses the installed client library from outside timbre: calls a server that is not there and
// prints the status. Exit 0 when both clients answer UNAVAILABLE, as they must.
#include <cstdio>

#include "timbre/builder_client.h"
#include "timbre/timbre_client.h"

// Only the public headers are installed: no server header is reachable.
#if __has_include("server/io/npy_file.h")
#error "a server header is reachable from the installed package"
#endif

int main() {
  timbre::TimbreClient::Options options;
  options.target = "127.0.0.1:1";  // nothing listens there
  options.retries = 0;
  options.timeout = absl::Seconds(5);
  auto client = timbre::TimbreClient::Create(options);
  auto builder = timbre::BuilderClient::Create(options);
  if (!client.ok() || !builder.ok()) {
    std::printf("cannot create the clients: %s %s\n", client.status().ToString().c_str(),
                builder.status().ToString().c_str());
    return 1;
  }
  const absl::Status speakers = (*client)->ListSpeakers().status();
  const absl::Status jobs = (*builder)->ListJobs().status();
  std::printf("ListSpeakers: %s\nListJobs: %s\n", speakers.ToString().c_str(),
              jobs.ToString().c_str());
  return absl::IsUnavailable(speakers) && absl::IsUnavailable(jobs) ? 0 : 1;
}
