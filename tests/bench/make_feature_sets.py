"""Writes the build benchmark's feature sets as RVC lays them out (one float32 .npy per clip).

  bench-data/features130k/  130,000 x 768 frames in 100 files (an RVC v2 speaker of ~43 min)
  bench-data/features400k/  400,000 x 768 frames in 100 files (above RVC's k-means threshold)
Frames are drawn around 2,000 centres (HuBERT-like clustered data), as make_bench_index.py does.
    python3 make_feature_sets.py OUT_DIR
"""
import os
import sys

import numpy as np

out = sys.argv[1]
dim, clusters = 768, 2000
rng = np.random.default_rng(2024)
centres = rng.standard_normal((clusters, dim)).astype(np.float32)
for name, rows in (("features130k", 130000), ("features400k", 400000)):
    directory = os.path.join(out, name)
    if os.path.isdir(directory):
        continue
    os.makedirs(directory + ".tmp", exist_ok=True)
    per_file = rows // 100
    for f in range(100):
        labels = rng.integers(0, clusters, per_file)
        frames = (centres[labels] + 0.35 * rng.standard_normal((per_file, dim))).astype(np.float32)
        np.save(os.path.join(directory + ".tmp", "%d_%d.npy" % (f, per_file)), frames)
    os.rename(directory + ".tmp", directory)
    print("wrote %s: %d x %d" % (directory, rows, dim))
