"""RVC's own train_index (infer-web.py), timed: the reference for timbre's `rvc` recipe.

Reads the .npy files of FEATURE_DIR in sorted order, concatenates and shuffles them
(np.random.seed(SEED) first, so timbre can use the same order), then trains
IVF{min(16*sqrt(N), N//39)},Flat with nprobe 1 and adds in batches of 8192. Prints one JSON
object with the seconds spent loading, training and adding, and the faiss build used.
    python3 rvc_train.py FEATURE_DIR SEED OUT_INDEX
"""
import json
import os
import sys
import time

import faiss
import numpy as np

feature_dir, seed, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
start = time.time()
npys = [np.load(os.path.join(feature_dir, name)) for name in sorted(os.listdir(feature_dir))]
big_npy = np.concatenate(npys, 0)
np.random.seed(seed)
big_npy_idx = np.arange(big_npy.shape[0])
np.random.shuffle(big_npy_idx)
big_npy = big_npy[big_npy_idx]
loaded = time.time()
n_ivf = min(int(16 * np.sqrt(big_npy.shape[0])), big_npy.shape[0] // 39)
index = faiss.index_factory(big_npy.shape[1], "IVF%s,Flat" % n_ivf)
faiss.extract_index_ivf(index).nprobe = 1
index.train(big_npy)
trained = time.time()
for i in range(0, big_npy.shape[0], 8192):
    index.add(big_npy[i:i + 8192])
added = time.time()
faiss.write_index(index, out)
print(json.dumps({"rows": int(big_npy.shape[0]), "description": "IVF%d,Flat" % n_ivf,
                  "load_s": loaded - start, "train_s": trained - loaded, "add_s": added - trained,
                  "total_s": time.time() - start,
                  "faiss": "faiss %s (%s)" % (faiss.__version__, faiss.get_compile_options().strip())}))
