"""Builds the benchmark's speaker exactly as RVC's train_index does, on generated frames.

768-d, 130,000 frames drawn around 2,000 centres (HuBERT-like clustered data), shuffled, then
IVF{min(16*sqrt(N), N//39)},Flat = IVF3333,Flat, L2, nprobe 1, added in batches of 8192, written
as RVC names it. Also writes 4,096 held-out query frames from the same distribution.
    python3 make_bench_index.py OUT_DIR
"""
import os
import sys
import time

import faiss
import numpy as np

out = sys.argv[1]
dim, n, clusters, held_out = 768, 130000, 2000, 4096
rng = np.random.default_rng(2024)
centres = rng.standard_normal((clusters, dim)).astype(np.float32)
labels = rng.integers(0, clusters, n + held_out)
frames = (centres[labels] + 0.35 * rng.standard_normal((n + held_out, dim))).astype(np.float32)
big_npy, queries = frames[:n], frames[n:]

big_npy_idx = np.arange(big_npy.shape[0])
np.random.shuffle(big_npy_idx)
big_npy = big_npy[big_npy_idx]
n_ivf = min(int(16 * np.sqrt(big_npy.shape[0])), big_npy.shape[0] // 39)
index = faiss.index_factory(dim, "IVF%s,Flat" % n_ivf)
index_ivf = faiss.extract_index_ivf(index)
index_ivf.nprobe = 1
start = time.time()
index.train(big_npy)
for i in range(0, big_npy.shape[0], 8192):
    index.add(big_npy[i:i + 8192])
speaker_dir = os.path.join(out, "repo", "bench")
os.makedirs(speaker_dir, exist_ok=True)
name = "added_IVF%s_Flat_nprobe_1_bench_v2.index" % n_ivf
faiss.write_index(index, os.path.join(speaker_dir, name))
np.save(os.path.join(out, "queries.npy"), queries)
print("wrote %s (%d vectors) in %.0f s with faiss %s (%s)" %
      (name, index.ntotal, time.time() - start, faiss.__version__, faiss.get_compile_options()))
