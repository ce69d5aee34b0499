#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

Small valid inputs of each format, so that the fuzzers start from files that pass the parsers'
first checks. Needs numpy and, for the index seeds, faiss's Python bindings
(deploy/install-deps.sh --python; PYTHONPATH=/opt/timbre/faiss/python).
"""
import hashlib
import io
import json
import os
import struct
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    directory = os.path.join(ROOT, target)
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(directory, name), "wb") as out:
        out.write(data)


def npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def length_prefixed(data):
    return struct.pack(">H", len(data)) + data


def main():
    rng = np.random.default_rng(7)
    f32 = rng.standard_normal((2, 256)).astype("<f4")
    f16 = rng.standard_normal((1, 256)).astype("<f2")
    write("npy", "f32_2x256.npy", npy_bytes(f32))
    write("npy", "f16_1x256.npy", npy_bytes(f16))
    write("npy", "f32_1x768.npy", npy_bytes(rng.standard_normal((1, 768)).astype("<f4")))
    write("npy", "f64_1x4.npy", npy_bytes(np.zeros((1, 4))))

    # frame_codec: serialized timbre.v1.BlendRequest (speaker 1, frames 2, options 3);
    # Frames: dtype 1 (1 float32, 2 float16), num_frames 2, dim 3, data 4.
    def varint(value):
        out = b""
        while True:
            byte = value & 0x7F
            value >>= 7
            if value:
                out += bytes([byte | 0x80])
            else:
                return out + bytes([byte])

    def field(number, wire, payload):
        key = varint((number << 3) | wire)
        if wire == 2:
            return key + varint(len(payload)) + payload
        return key + varint(payload)

    def frames(dtype, rows, dim, data):
        return (field(1, 0, dtype) + field(2, 0, rows) + field(3, 0, dim) + field(4, 2, data))

    values = rng.standard_normal((2, 4))
    write("frame_codec", "f32_2x4", field(1, 2, b"alice") +
          field(2, 2, frames(1, 2, 4, values.astype("<f4").tobytes())))
    write("frame_codec", "f16_2x4", field(1, 2, b"alice") +
          field(2, 2, frames(2, 2, 4, values.astype("<f2").tobytes())))

    write("token_file", "two_tokens", "# user tokens\n0123456789abcdef0123\n\n  fedcba9876543210fedc  \n")
    write("name", "speaker", "alice")
    write("name", "feature_set", "fs-0123456789abcdef")
    write("name", "file", "a_1.npy")
    write("name", "traversal", "../x")

    metadata = {"format": 1, "index_file": "index.faiss", "dim": 256, "num_vectors": "1000",
                "description": "IVF25,Flat", "recipe": "rvc", "created_at": "2026-12-01T00:00:00Z"}
    write("json_record", "metadata", b"\x00" + json.dumps(metadata).encode())
    sha = hashlib.sha256(b"x").hexdigest()
    manifest = {"format": 1, "files": [{"name": "a.npy", "rows": "2", "dim": 256,
                                        "dtype": "float32", "bytes": "2176", "sha256": sha}]}
    write("json_record", "manifest", b"\x01" + json.dumps(manifest).encode())
    job = {"id": "job-0123456789ab", "speaker": "alice", "state": "STATE_RUNNING",
           "stage": "training", "feature_set_id": "fs-0123456789abcdef"}
    write("json_record", "job_running", b"\x02" + json.dumps(job).encode())

    # upload: op 0 (a file with its true size and digest), then op 3 (finish).
    file_bytes = npy_bytes(rng.standard_normal((2, 256)).astype("<f4"))
    write("upload", "one_file", b"\x00" + length_prefixed(b"a.npy") +
          length_prefixed(file_bytes) + b"\x08" * 8 + b"\x03")
    write("upload", "lying_header", b"\x01" + length_prefixed(b"a.npy") +
          struct.pack(">I", 100) + length_prefixed(b"00" * 32) + b"\x02" +
          length_prefixed(b"\x93NUMPY") + b"\x03")

    # repository: operations (kind, depth - 1, names as dictionary indexes, then the kind's
    # arguments); see repository_fuzzer.cc.
    write("repository", "version_and_fifo",
          bytes([0, 1, 0, 2]) +  # mkdir alice/1
          bytes([1, 2, 0, 2, 6]) + length_prefixed(json.dumps(metadata).encode()) +
          bytes([1, 1, 0, 8]) + length_prefixed(b"x") +  # file alice/added_IVF1_Flat_x.index
          bytes([3, 2, 1, 2, 6]))  # fifo bob/1/metadata.json
    write("repository", "links",
          bytes([2, 1, 0, 7, 0]) +  # alice/index.faiss -> /dev/zero
          bytes([2, 0, 1, 2]))      # bob -> ..

    try:
        import faiss
    except ImportError:
        print("make_seeds: no faiss bindings; index seeds not written", file=sys.stderr)
        return
    data = rng.standard_normal((64, 8)).astype("float32")
    for name, description in [("flat", "Flat"), ("ivf_flat", "IVF2,Flat"), ("pq", "PQ2x4"),
                              ("ivf_pq_rflat", "IVF2,PQ4x4fs,RFlat"),
                              ("pca_ivf_rflat", "PCA4,IVF2,Flat,RFlat"),
                              ("pca_ivf_sq8_rflat", "PCA4,IVF2,SQ8,RFlat")]:
        index = faiss.index_factory(8, description)
        index.train(data)
        index.add(data)
        write("faiss_index", name + ".index", faiss.serialize_index(index).tobytes())


if __name__ == "__main__":
    main()
