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

from rvc_train_index import train_index

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

# RVC's train_index: the sorted files concatenated, then rvc_train_index.train_index.
feature_dir = out
npys = []
listdir_res = sorted(n for n in os.listdir(feature_dir) if n.endswith(".npy"))
for name in listdir_res:
    npys.append(np.load("%s/%s" % (feature_dir, name)))
big_npy = np.concatenate(npys, 0)
index, big_npy_idx, n_ivf = train_index(big_npy, SEED)
index_name = "added_IVF%s_Flat_nprobe_1_fixture_v1.index" % n_ivf
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
    "nprobe": int(faiss.extract_index_ivf(index).nprobe),
    "index_file": index_name,
    "shuffled_row_indices_head": [int(i) for i in big_npy_idx[:HEAD]],
    "faiss_version": faiss.__version__,
}
with open(os.path.join(out, "fixture.json"), "w") as f:
    json.dump(fixture, f, indent=2)
    f.write("\n")
print(index_name, index.ntotal, "vectors; faiss", faiss.__version__, faiss.get_compile_options())
