"""RVC's train_index (infer-web.py), from the concatenated features on, for the fixture scripts.

Covers N <= 200,000 rows (RVC replaces larger sets by 10,000 MiniBatchKMeans centroids first).
"""
import faiss
import numpy as np


def train_index(big_npy, seed):
    """Shuffles big_npy's rows as RVC does (np.random.seed(seed) first; RVC does not seed),
    trains IVF{n_ivf},Flat with nprobe 1 stored and adds the rows in batches of 8192.

    Returns (index, big_npy_idx, n_ivf): big_npy_idx[i] is the row of big_npy stored as id i.
    """
    big_npy_idx = np.arange(big_npy.shape[0])
    np.random.seed(seed)
    np.random.shuffle(big_npy_idx)
    big_npy = big_npy[big_npy_idx]
    n_ivf = min(int(16 * np.sqrt(big_npy.shape[0])), big_npy.shape[0] // 39)
    index = faiss.index_factory(big_npy.shape[1], "IVF%s,Flat" % n_ivf)
    index_ivf = faiss.extract_index_ivf(index)
    index_ivf.nprobe = 1
    index.train(big_npy)
    batch_size_add = 8192
    for i in range(0, big_npy.shape[0], batch_size_add):
        index.add(big_npy[i:i + batch_size_add])
    return index, big_npy_idx, n_ivf
