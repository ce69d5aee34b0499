"""Writes the fixture for "timbre's rvc recipe reproduces RVC's index file" into rvc_build/.

Three feature files of clustered 256-d float32 frames, named so that sorted order (10, 2, a)
differs from numeric order (2, 10, a), and the added_*.index that RVC's train_index
(infer-web.py) makes from them: files concatenated in sorted order, rows shuffled by numpy's global
RandomState (seeded here, unseeded in RVC), n_ivf = min(int(16*sqrt(N)), N//39), IVF{n_ivf},Flat
with nprobe 1 set before training, added in batches of 8192. fixture.json records the seed, the
expected n_ivf, the files in the order read and the first shuffled row indices.
Run with faiss's Python bindings (deploy/install-deps.sh --python builds them) and Debian's numpy:
    PYTHONPATH=/opt/timbre/faiss/python /usr/bin/python3 tests/data/make_rvc_build_fixture.py \
        tests/data/rvc_build
"""
import json
import os
import sys

import faiss
import numpy as np

out = sys.argv[1] if len(sys.argv) > 1 else "rvc_build"
SEED = 1729
DIM = 256
FILES = {"2.npy": 900, "10.npy": 700, "a.npy": 800}
HEAD = 16

os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(20240611)
centres = rng.standard_normal((48, DIM)).astype(np.float32)
for name, rows in FILES.items():
    frames = centres[rng.integers(0, len(centres), rows)] + 0.35 * rng.standard_normal((rows, DIM))
    np.save(os.path.join(out, name), frames.astype(np.float32))

# RVC's train_index, step by step (v1 features: 256-d).
feature_dir = out
npys = []
listdir_res = sorted(n for n in os.listdir(feature_dir) if n.endswith(".npy"))
for name in listdir_res:
    npys.append(np.load("%s/%s" % (feature_dir, name)))
big_npy = np.concatenate(npys, 0)
big_npy_idx = np.arange(big_npy.shape[0])
np.random.seed(SEED)
np.random.shuffle(big_npy_idx)
big_npy = big_npy[big_npy_idx]
n_ivf = min(int(16 * np.sqrt(big_npy.shape[0])), big_npy.shape[0] // 39)
index = faiss.index_factory(DIM, "IVF%s,Flat" % n_ivf)
index_ivf = faiss.extract_index_ivf(index)
index_ivf.nprobe = 1
index.train(big_npy)
batch_size_add = 8192
for i in range(0, big_npy.shape[0], batch_size_add):
    index.add(big_npy[i:i + batch_size_add])
index_name = "added_IVF%s_Flat_nprobe_%s_fixture_v1.index" % (n_ivf, index_ivf.nprobe)
for stale in os.listdir(out):
    if stale.startswith("added_") and stale != index_name:
        os.remove(os.path.join(out, stale))
faiss.write_index(index, os.path.join(out, index_name))

fixture = {
    "description": "RVC train_index run on the .npy files here; see make_rvc_build_fixture.py",
    "shuffle_seed": SEED,
    "shuffle": "np.random.seed(shuffle_seed); np.random.shuffle(np.arange(rows))",
    "dim": DIM,
    "rows": int(big_npy.shape[0]),
    "files_in_read_order": [{"name": n, "rows": FILES[n]} for n in listdir_res],
    "n_ivf": n_ivf,
    "nprobe": int(index_ivf.nprobe),
    "index_file": index_name,
    "shuffled_row_indices_head": [int(i) for i in big_npy_idx[:HEAD]],
    "faiss_version": faiss.__version__,
}
with open(os.path.join(out, "fixture.json"), "w") as f:
    json.dump(fixture, f, indent=2)
    f.write("\n")
print(index_name, index.ntotal, "vectors; faiss", faiss.__version__, faiss.get_compile_options())
