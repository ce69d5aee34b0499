"""timbre_client.rvc.RemoteIndex against RVC's own retrieval step: RVC's four lines run verbatim
(numpy and Python faiss on the same RVC-written index file) and the drop-in on a real server
give the same frames to float32 rounding, in RVC's full and half precision."""
import faiss
import numpy as np
import pytest

from timbre_client import InvalidArgument, NotFound
from timbre_client.rvc import RemoteIndex
from conftest import FIXTURE_INDEX


@pytest.fixture(scope="module")
def rvc():
    """RVC's index and big_npy, loaded as pipeline.py loads them."""
    index = faiss.read_index(str(FIXTURE_INDEX))
    big_npy = index.reconstruct_n(0, index.ntotal)
    return index, big_npy


def rvc_step(index, big_npy, npy, feats, index_rate):
    # RVC's infer/modules/vc/pipeline.py, verbatim (feats as numpy instead of torch).
    score, ix = index.search(npy, k=8)
    weight = np.square(1 / score)
    weight /= weight.sum(axis=1, keepdims=True)
    npy = np.sum(big_npy[ix] * np.expand_dims(weight, axis=2), axis=1)
    feats = npy * index_rate + (1 - index_rate) * feats
    return feats


@pytest.fixture(scope="module")
def frames(rvc):
    """Query frames near stored ones (as HuBERT frames of the same voice would be), 16 per call."""
    _, big_npy = rvc
    rng = np.random.default_rng(15)
    picked = big_npy[rng.integers(0, len(big_npy), 64)]
    return (picked + 0.2 * rng.standard_normal(picked.shape)).astype(np.float32)


@pytest.mark.parametrize("realtime", [False, True])
@pytest.mark.parametrize("index_rate", [0.75, 0.3, 1.0])
def test_float32_equals_rvc(client, rvc, frames, realtime, index_rate):
    remote = RemoteIndex(client, "rvc", realtime=realtime)
    for block in np.split(frames, 4):
        expected = rvc_step(*rvc, block, block, index_rate)
        out = remote.retrieve(block, index_rate)
        assert out.dtype == np.float32 and out.shape == block.shape
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    remote.close()


@pytest.mark.parametrize("realtime", [False, True])
def test_float16_in_float16_out_as_rvc_half_mode(client, rvc, frames, realtime):
    remote = RemoteIndex(client, "rvc", realtime=realtime)
    index_rate = 0.75
    for block in np.split(frames.astype(np.float16), 4):
        out = remote.retrieve(block, index_rate)
        assert out.dtype == np.float16 and out.shape == block.shape
        # RVC's step in float32 on the same half-precision frames, rounded to half once.
        npy = block.astype("float32")
        exact = rvc_step(*rvc, npy, npy, index_rate).astype(np.float16)
        np.testing.assert_array_max_ulp(out, exact, maxulp=1)
        # RVC's half mode rounds the retrieved frames to half before mixing in half precision,
        # each product and the sum rounded again: within two half steps of the larger term.
        retrieved = rvc_step(*rvc, npy, npy, 1.0).astype("float16")
        half_mode = retrieved * np.float16(index_rate) + np.float16(1 - index_rate) * block
        step = np.spacing(np.maximum(np.abs(retrieved), np.abs(block))).astype(np.float32)
        difference = np.abs(out.astype(np.float32) - half_mode.astype(np.float32))
        assert np.all(difference <= 2 * step)
    remote.close()


@pytest.mark.parametrize("query,realtime", [("?realtime=1", False), ("", True), ("", False)])
def test_open_url(server, frames, rvc, query, realtime):
    remote = RemoteIndex.open(f"timbre://{server.target}/rvc{query}", realtime=realtime, timeout=20)
    try:
        assert remote.realtime == (realtime or bool(query))
        np.testing.assert_allclose(remote.retrieve(frames[:16], 0.75),
                                   rvc_step(*rvc, frames[:16], frames[:16], 0.75),
                                   rtol=1e-5, atol=1e-6)
    finally:
        remote.close()
        remote.client.close()


@pytest.mark.parametrize("url", ["http://h:1/rvc", "timbre://h:1/", "timbre:///rvc"])
def test_open_refuses_other_urls(url):
    with pytest.raises(InvalidArgument, match="is not timbre://host:port/speaker"):
        RemoteIndex.open(url)


def test_unknown_speaker(client, frames):
    with pytest.raises(NotFound, match="speaker 'bob' not found"):
        RemoteIndex(client, "bob").retrieve(frames[:16], 0.75)
