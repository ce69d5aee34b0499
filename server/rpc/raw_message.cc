#include "server/rpc/raw_message.h"

#include "absl/strings/str_cat.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "grpcpp/support/proto_buffer_reader.h"

namespace timbre {

absl::Status DecodeMessage(grpc::ByteBuffer& bytes, google::protobuf::Message* message) {
  message->Clear();
  bool parsed = false;
  {
    grpc::ProtoBufferReader reader(&bytes);
    parsed = reader.status().ok() && message->ParseFromZeroCopyStream(&reader);
  }
  bytes.Clear();
  if (!parsed) {
    message->Clear();
    return absl::InvalidArgumentError(absl::StrCat(
        "the message is not a valid ", message->GetDescriptor()->full_name(), " protobuf message"));
  }
  return absl::OkStatus();
}

absl::Status EncodeMessage(const google::protobuf::Message& message, grpc::ByteBuffer* bytes) {
  bytes->Clear();  // gRPC's serializer requires an empty buffer; a stream reuses its buffer
  bool own_buffer = false;
  const grpc::Status status =
      grpc::SerializationTraits<google::protobuf::Message>::Serialize(message, bytes, &own_buffer);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat("cannot encode a ",
                                            message.GetDescriptor()->full_name(), ": ",
                                            status.error_message()));
  }
  return absl::OkStatus();
}

}  // namespace timbre
