"""Fidelity of one index against exact search over its own stored vectors, on held-out frames.

recall@8 (share of the exact 8 nearest neighbours found) and the mean cosine between RVC's blend
of the index's neighbours and the blend of the exact ones (weights (1/distance)^2, index_rate 1,
as timbre's auto recipe measures it). Searches run 16 frames at a time with the given nprobe, as
real-time calls do. Prints one JSON object.
    python3 speech_fidelity.py INDEX QUERIES.npy NPROBE
"""
import json
import sys

import faiss
import numpy as np

index_path, queries_path, nprobe = sys.argv[1], sys.argv[2], int(sys.argv[3])
loaded = faiss.read_index(index_path)
index = faiss.downcast_index(loaded)  # a view: `loaded` keeps owning the index
# faiss 1.7.3's extract_index_ivf does not look behind a refine step.
base = faiss.downcast_index(index.base_index) if isinstance(index, faiss.IndexRefine) else index
faiss.extract_index_ivf(base).nprobe = nprobe
stored = index.reconstruct_n(0, index.ntotal)
queries = np.load(queries_path).astype(np.float32)
exact = faiss.IndexFlatL2(index.d)
exact.add(stored)
exact_scores, exact_ids = exact.search(queries, 8)


def blend(scores, ids):
    weight = np.square(1 / np.maximum(scores, 1e-12))
    weight /= weight.sum(axis=1, keepdims=True)
    return np.sum(stored[ids] * np.expand_dims(weight, axis=2), axis=1)


parts = [index.search(queries[s:s + 16], 8) for s in range(0, len(queries), 16)]
scores = np.concatenate([p[0] for p in parts])
ids = np.concatenate([p[1] for p in parts])
found = ids >= 0
scores, ids = np.where(found, scores, np.inf), np.where(found, ids, 0)
a, b = blend(scores, ids), blend(exact_scores, exact_ids)
cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
recall = np.mean([len(set(x[f]) & set(y)) / 8 for x, f, y in zip(ids, found, exact_ids)])
print(json.dumps({"recall_at_8": float(recall), "mean_blend_cosine": float(np.mean(cosine)),
                  "queries": len(queries), "nprobe": nprobe}))
