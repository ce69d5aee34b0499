"""Writes the RVC-compatibility fixture used by rvc_compat_test.cc.

The index is trained exactly as RVC's train_index does (infer-web.py), on generated frames, and
the expected output is RVC's own numpy retrieval code (infer/modules/vc/pipeline.py) run on it.
Run with faiss's Python bindings (deploy/install-deps.sh --python builds them):
    PYTHONPATH=/opt/timbre/faiss/python python3 tests/data/make_rvc_fixture.py tests/data
"""
import os
import sys

import faiss
import numpy as np

out = sys.argv[1] if len(sys.argv) > 1 else "."
rng = np.random.default_rng(20231)
dim, n, clusters = 256, 1000, 40
centres = rng.standard_normal((clusters, dim)).astype(np.float32)
big_npy = (centres[rng.integers(0, clusters, n)] +
           0.35 * rng.standard_normal((n, dim))).astype(np.float32)

# RVC's train_index, step by step.
big_npy_idx = np.arange(big_npy.shape[0])
np.random.seed(7)
np.random.shuffle(big_npy_idx)
big_npy = big_npy[big_npy_idx]
n_ivf = min(int(16 * np.sqrt(big_npy.shape[0])), big_npy.shape[0] // 39)
index = faiss.index_factory(dim, "IVF%s,Flat" % n_ivf)
index_ivf = faiss.extract_index_ivf(index)
index_ivf.nprobe = 1
index.train(big_npy)
batch_size_add = 8192
for i in range(0, big_npy.shape[0], batch_size_add):
    index.add(big_npy[i:i + batch_size_add])
name = "added_IVF%s_Flat_nprobe_%s_fixture_v1.index" % (n_ivf, index_ivf.nprobe)
faiss.write_index(index, os.path.join(out, name))

# RVC's retrieval and blend (pipeline.py), on queries near the stored frames.
queries = (big_npy[rng.integers(0, n, 24)] +
           0.2 * rng.standard_normal((24, dim))).astype(np.float32)
index_rate = 0.75
npy = index.reconstruct_n(0, index.ntotal)
score, ix = index.search(queries, k=8)
weight = np.square(1 / score)
weight /= weight.sum(axis=1, keepdims=True)
retrieved = np.sum(npy[ix] * np.expand_dims(weight, axis=2), axis=1)
expected = retrieved * index_rate + (1 - index_rate) * queries
np.save(os.path.join(out, "rvc_fixture_queries.npy"), queries)
np.save(os.path.join(out, "rvc_fixture_expected.npy"), expected.astype(np.float32))
np.save(os.path.join(out, "rvc_fixture_ids.npy"), ix.astype(np.float32))
print(name, index.ntotal, "vectors; faiss", faiss.__version__, faiss.get_compile_options())
