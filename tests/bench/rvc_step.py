"""RVC's own in-process retrieval step (infer/modules/vc/pipeline.py), timed per call.

Loads the index, reconstructs big_npy once per session as RVC does, then for each call of F
query frames runs index.search(k=8) and RVC's numpy blend. One thread, as a voice-changer
client's audio thread runs it. Prints one JSON object.
    python3 rvc_step.py INDEX QUERIES.npy [FRAMES_PER_CALL] [CALLS]
"""
import json
import sys
import time

import faiss
import numpy as np

index_path, queries_path = sys.argv[1], sys.argv[2]
frames_per_call = int(sys.argv[3]) if len(sys.argv) > 3 else 16
calls = int(sys.argv[4]) if len(sys.argv) > 4 else 400
faiss.omp_set_num_threads(1)
index = faiss.read_index(index_path)
big_npy = index.reconstruct_n(0, index.ntotal)
queries = np.load(queries_path)
index_rate = 0.75


def step(feats):
    score, ix = index.search(feats, k=8)
    weight = np.square(1 / score)
    weight /= weight.sum(axis=1, keepdims=True)
    retrieved = np.sum(big_npy[ix] * np.expand_dims(weight, axis=2), axis=1)
    return retrieved * index_rate + (1 - index_rate) * feats


latencies = []
for call in range(calls + 20):
    start_row = (call * frames_per_call) % (len(queries) - frames_per_call)
    feats = queries[start_row:start_row + frames_per_call]
    t0 = time.perf_counter()
    step(feats)
    if call >= 20:  # warm-up
        latencies.append((time.perf_counter() - t0) * 1e3)
latencies.sort()
p = lambda q: float(np.percentile(latencies, q))
print(json.dumps({
    "faiss": "%s (%s) from %s" % (faiss.__version__, faiss.get_compile_options(),
                                  faiss.__file__.rsplit("/", 2)[0]),
    "frames_per_call": frames_per_call, "calls": calls,
    "p50_ms": p(50), "p99_ms": p(99), "frames_per_second": frames_per_call / (p(50) / 1e3)}))
