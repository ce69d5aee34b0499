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

from rvc_train_index import train_index

out = sys.argv[1] if len(sys.argv) > 1 else "."
rng = np.random.default_rng(20231)
dim, n, clusters = 256, 1000, 40
centres = rng.standard_normal((clusters, dim)).astype(np.float32)
big_npy = (centres[rng.integers(0, clusters, n)] +
           0.35 * rng.standard_normal((n, dim))).astype(np.float32)

# RVC's train_index (rvc_train_index.py), seeded.
index, big_npy_idx, n_ivf = train_index(big_npy, seed=7)
big_npy = big_npy[big_npy_idx]
name = "added_IVF%s_Flat_nprobe_1_fixture_v1.index" % n_ivf
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
