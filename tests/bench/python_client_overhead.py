"""The Python client's own work per call, without the network or the server: encoding a block
(numpy -> Frames -> serialised BlendRequest, as gRPC sends it) and decoding the answer
(serialised BlendResponse -> message -> numpy), for 16 frames of 768 dims in float32 and float16.
Prints one JSON object with microseconds per call (median of 7 repeats of 2,000 calls).
    python3 python_client_overhead.py [FRAMES] [DIM]
"""
import json
import statistics
import sys
import timeit

import numpy as np

from timbre_client._proto.timbre.v1 import timbre_pb2
from timbre_client.frames import decode_frames, encode_frames
from timbre_client.options import retrieval_options

frames_per_call = int(sys.argv[1]) if len(sys.argv) > 1 else 16
dim = int(sys.argv[2]) if len(sys.argv) > 2 else 768
report = {"frames": frames_per_call, "dim": dim}
for dtype in ("float32", "float16"):
    block = np.random.default_rng(1).standard_normal((frames_per_call, dim)).astype(dtype)

    def encode():
        message, _ = encode_frames(block)
        request = timbre_pb2.BlendRequest(speaker="bench", frames=message,
                                          options=retrieval_options(index_rate=0.75))
        return request.SerializeToString()

    answer = timbre_pb2.BlendResponse(frames=encode_frames(block)[0]).SerializeToString()

    def decode():
        return decode_frames(timbre_pb2.BlendResponse.FromString(answer).frames)

    for name, function in (("encode", encode), ("decode", decode)):
        runs = timeit.repeat(function, number=2000, repeat=7)
        report[f"{dtype}_{name}_us"] = statistics.median(runs) / 2000 * 1e6
    report[f"{dtype}_total_us"] = report[f"{dtype}_encode_us"] + report[f"{dtype}_decode_us"]
print(json.dumps(report))
