// Decoding and encoding the messages of the streaming methods that read raw bytes (BlendStream,
// UploadFeatures), so that a message that does not decode gets an error naming it instead of
// looking like the end of the client's stream.
//
// Thread-compatible: free functions.
#ifndef TIMBRE_SERVER_RPC_RAW_MESSAGE_H_
#define TIMBRE_SERVER_RPC_RAW_MESSAGE_H_

#include "absl/status/status.h"
#include "google/protobuf/message.h"
#include "grpcpp/support/byte_buffer.h"

namespace timbre {

// Decodes `bytes` (consumed) into `message`. INVALID_ARGUMENT naming the message type when they
// are not a valid message of that type.
absl::Status DecodeMessage(grpc::ByteBuffer& bytes, google::protobuf::Message* message);

// Encodes `message` into `bytes`, replacing what they held (a stream reuses one buffer for
// every answer). INTERNAL if protobuf cannot serialise it.
absl::Status EncodeMessage(const google::protobuf::Message& message, grpc::ByteBuffer* bytes);

}  // namespace timbre

#endif  // TIMBRE_SERVER_RPC_RAW_MESSAGE_H_
