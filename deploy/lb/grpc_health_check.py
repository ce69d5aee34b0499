#!/usr/bin/env python3
"""Prints, in hex, one grpc.health.v1.Health/Check call for SERVICE over HTTP/2 in plain text:
the connection preface, an empty SETTINGS frame, a HEADERS frame (HPACK literals, no Huffman)
and a DATA frame holding HealthCheckRequest{service: SERVICE}.

HAProxy 2.6's http-check cannot send a binary body (a gRPC message starts with NUL bytes), so
haproxy.cfg sends these bytes with `tcp-check send-binary` and expects the reply's DATA frame
of HealthCheckResponse{status: SERVING}: 000007 00 00 00000001 | 00 00000002 0801.

    deploy/lb/grpc_health_check.py timbre.v1.Timbre
"""
import sys


def literal(name_index, value):
    """A literal header field without indexing, with a name from HPACK's static table."""
    out = bytearray([name_index] if name_index < 15 else [0x0f, name_index - 15])
    encoded = value.encode()
    assert len(encoded) < 127
    return bytes(out) + bytes([len(encoded)]) + encoded


def literal_new_name(name, value):
    """A literal header field without indexing, with a new name."""
    name, value = name.encode(), value.encode()
    return bytes([0x00, len(name)]) + name + bytes([len(value)]) + value


def frame(kind, flags, stream, payload):
    """An HTTP/2 frame."""
    return (len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") +
            payload)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: grpc_health_check.py SERVICE")
    service = sys.argv[1].encode()
    # :method POST (static 3), :scheme http (static 6), :path, :authority, content-type, te.
    block = (bytes([0x83, 0x86]) + literal(4, "/grpc.health.v1.Health/Check") +
             literal(1, "lb") + literal(31, "application/grpc") +
             literal_new_name("te", "trailers"))
    message = b"\x0a" + bytes([len(service)]) + service  # field 1 (service), length-delimited
    data = b"\x00" + len(message).to_bytes(4, "big") + message  # uncompressed, length
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    print((preface + frame(4, 0, 0, b"") + frame(1, 0x4, 1, block) +  # END_HEADERS
           frame(0, 0x1, 1, data)).hex())  # END_STREAM


if __name__ == "__main__":
    main()
