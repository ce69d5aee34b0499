#include "timbre/builder_client.h"

#include <algorithm>
#include <filesystem>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/io/posix_file.h"
#include "server/io/sha256.h"

namespace timbre {
namespace {

namespace fs = std::filesystem;

// Reads the regular file `path` (InputFile) in chunks of `chunk_bytes`, calling `chunk` with
// each. Errors: NOT_FOUND if the file is missing; INVALID_ARGUMENT if it is not a regular file;
// INTERNAL for a read error; those `chunk` returns.
absl::Status ForEachChunk(const std::string& path, int64_t chunk_bytes,
                          absl::FunctionRef<absl::Status(absl::string_view)> chunk) {
  absl::StatusOr<std::unique_ptr<InputFile>> file = InputFile::Open(path);
  if (!file.ok()) return file.status();
  std::string buffer(static_cast<size_t>(chunk_bytes), '\0');
  for (int64_t left = (*file)->size(); left > 0;) {
    const size_t size = static_cast<size_t>(std::min(left, chunk_bytes));
    if (absl::Status read = (*file)->ReadExactly(buffer.data(), size); !read.ok()) return read;
    if (absl::Status sent = chunk(absl::string_view(buffer.data(), size)); !sent.ok()) return sent;
    left -= static_cast<int64_t>(size);
  }
  return absl::OkStatus();
}

// The response of a finished call, or its error. Takes the response by pointer: the call must
// have filled it before it is moved out.
template <typename Response>
absl::StatusOr<Response> Finish(const grpc::Status& status, Response* response) {
  if (!status.ok()) return FromGrpcStatus(status);
  return std::move(*response);
}

}  // namespace

absl::StatusOr<std::vector<std::string>> FeatureFilesAt(const std::string& path) {
  std::error_code error;
  const fs::file_status status = fs::status(path, error);
  if (error || !fs::exists(status)) return absl::NotFoundError(absl::StrCat("no such file or directory '", path, "'"));
  if (!fs::is_directory(status)) return std::vector<std::string>{path};
  std::vector<std::string> files;
  for (const fs::directory_entry& entry : fs::directory_iterator(path, error)) {
    if (entry.is_regular_file() && absl::EndsWith(entry.path().filename().string(), ".npy")) {
      files.push_back(entry.path().string());
    }
  }
  if (error) return absl::NotFoundError(absl::StrCat("cannot list '", path, "': ", error.message()));
  if (files.empty()) return absl::InvalidArgumentError(absl::StrCat("'", path, "' has no .npy files"));
  std::sort(files.begin(), files.end());
  return files;
}

absl::StatusOr<std::unique_ptr<BuilderClient>> BuilderClient::Create(TimbreClient::Options options) {
  auto channel = MakeChannel(options);
  if (!channel.ok()) return channel.status();
  return std::unique_ptr<BuilderClient>(new BuilderClient(std::move(options), *std::move(channel)));
}

BuilderClient::BuilderClient(TimbreClient::Options options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(timbre::v1::IndexBuilder::NewStub(channel_)) {}

absl::StatusOr<timbre::v1::FeatureSet> BuilderClient::Upload(
    const std::string& path, int64_t chunk_bytes,
    absl::FunctionRef<void(int64_t, int64_t)> progress) const {
  if (chunk_bytes < 1) return absl::InvalidArgumentError("the chunk size must be positive");
  auto files = FeatureFilesAt(path);
  if (!files.ok()) return files.status();
  // Headers first need each file's size and digest.
  std::vector<timbre::v1::UploadFeaturesRequest> headers;
  int64_t total = 0;
  for (const std::string& file : *files) {
    Sha256 digest;
    int64_t size = 0;
    absl::Status hashed = ForEachChunk(file, chunk_bytes, [&](absl::string_view bytes) {
      digest.Update(bytes);
      size += static_cast<int64_t>(bytes.size());
      return absl::OkStatus();
    });
    if (!hashed.ok()) return hashed;
    timbre::v1::UploadFeaturesRequest header;
    header.mutable_file()->set_name(fs::path(file).filename().string());
    header.mutable_file()->set_size_bytes(static_cast<uint64_t>(size));
    header.mutable_file()->set_sha256(digest.HexDigest());
    headers.push_back(std::move(header));
    total += size;
  }

  grpc::ClientContext context;
  timbre::v1::FeatureSet response;
  auto writer = stub_->UploadFeatures(&context, &response);
  int64_t sent = 0;
  bool stream_open = true;
  for (size_t i = 0; i < files->size() && stream_open; ++i) {
    stream_open = writer->Write(headers[i]);
    absl::Status read = ForEachChunk((*files)[i], chunk_bytes, [&](absl::string_view bytes) {
      timbre::v1::UploadFeaturesRequest chunk;
      chunk.set_chunk(std::string(bytes));
      // A refused write means the server ended the call; its status says why.
      if (!stream_open || !(stream_open = writer->Write(chunk))) return absl::OkStatus();
      sent += static_cast<int64_t>(bytes.size());
      progress(sent, total);
      return absl::OkStatus();
    });
    if (!read.ok()) {
      context.TryCancel();
      writer->Finish().ok();
      return read;
    }
  }
  writer->WritesDone();
  return Finish(writer->Finish(), &response);
}

template <typename Request, typename Response>
absl::StatusOr<Response> BuilderClient::Call(
    grpc::Status (timbre::v1::IndexBuilder::Stub::*method)(grpc::ClientContext*, const Request&,
                                                          Response*),
    const Request& request) const {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoMilliseconds(options_.timeout));
  Response response;
  return Finish((stub_.get()->*method)(&context, request, &response), &response);
}

absl::StatusOr<timbre::v1::FeatureSet> BuilderClient::Import(const std::string& server_path) const {
  timbre::v1::ImportFeaturesRequest request;
  request.set_path(server_path);
  return Call(&timbre::v1::IndexBuilder::Stub::ImportFeatures, request);
}

absl::StatusOr<timbre::v1::ListFeatureSetsResponse> BuilderClient::ListFeatureSets() const {
  return Call(&timbre::v1::IndexBuilder::Stub::ListFeatureSets, timbre::v1::ListFeatureSetsRequest());
}

absl::Status BuilderClient::DeleteFeatureSet(const std::string& id) const {
  timbre::v1::DeleteFeatureSetRequest request;
  request.set_id(id);
  return Call(&timbre::v1::IndexBuilder::Stub::DeleteFeatureSet, request).status();
}

absl::StatusOr<timbre::v1::BuildJob> BuilderClient::Build(
    const timbre::v1::BuildIndexRequest& request) const {
  return Call(&timbre::v1::IndexBuilder::Stub::BuildIndex, request);
}

absl::StatusOr<timbre::v1::BuildJob> BuilderClient::GetJob(const std::string& id) const {
  timbre::v1::GetJobRequest request;
  request.set_id(id);
  return Call(&timbre::v1::IndexBuilder::Stub::GetJob, request);
}

absl::StatusOr<timbre::v1::ListJobsResponse> BuilderClient::ListJobs() const {
  return Call(&timbre::v1::IndexBuilder::Stub::ListJobs, timbre::v1::ListJobsRequest());
}

absl::StatusOr<timbre::v1::BuildJob> BuilderClient::CancelJob(const std::string& id) const {
  timbre::v1::CancelJobRequest request;
  request.set_id(id);
  return Call(&timbre::v1::IndexBuilder::Stub::CancelJob, request);
}

absl::StatusOr<timbre::v1::BuildJob> BuilderClient::WatchJob(
    const std::string& id, absl::FunctionRef<void(const timbre::v1::BuildJob&)> on_update) const {
  grpc::ClientContext context;
  timbre::v1::WatchJobRequest request;
  request.set_id(id);
  auto reader = stub_->WatchJob(&context, request);
  timbre::v1::BuildJob job;
  bool any = false;
  while (reader->Read(&job)) {
    any = true;
    on_update(job);
  }
  absl::Status status = FromGrpcStatus(reader->Finish());
  if (!status.ok()) return status;
  if (!any) return absl::UnavailableError(absl::StrCat("the watch of job ", id, " ended without a record"));
  return job;
}

}  // namespace timbre
