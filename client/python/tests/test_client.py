"""timbre_client.Client against a real timbre-server: every serving method, float32 and
float16, and every bad input the server refuses (exception class, code, message)."""
import grpc
import numpy as np
import pytest

from timbre_client import (Client, FailedPrecondition, InvalidArgument, NotFound, SpeakerInfo,
                           TimbreError, Unavailable)
from conftest import DIM


def test_blend_float32_equals_rvc(client, queries, expected):
    out = client.blend("rvc", queries)
    assert out.shape == queries.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_blend_float16_answers_float16(client, queries):
    half = queries.astype(np.float16)
    out = client.blend("rvc", half)
    assert out.shape == queries.shape and out.dtype == np.float16
    # The server computes in float32 and rounds once: the float32 answer for the same values,
    # rounded to float16, within one float16 step.
    reference = client.blend("rvc", half.astype(np.float32)).astype(np.float16)
    np.testing.assert_array_max_ulp(out, reference, maxulp=1)


def test_blend_one_frame_and_non_contiguous_frames(client, queries, expected):
    out = client.blend("rvc", queries[3])
    assert out.shape == (DIM,)
    np.testing.assert_allclose(out, expected[3], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(client.blend("rvc", queries[::2]), expected[::2], rtol=1e-5,
                               atol=1e-5)


def test_blend_options(client, queries):
    np.testing.assert_array_equal(client.blend("rvc", queries, index_rate=0), queries)
    distances, ids, vectors = client.search("rvc", queries, k=1, with_vectors=True)
    np.testing.assert_allclose(client.blend("rvc", queries, k=1, index_rate=1), vectors[:, 0],
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(client.blend("rvc", queries, nprobe=25, k_factor=0),
                               client.blend("rvc", queries, nprobe=25), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_search_shapes_and_ids(client, queries, dtype):
    expected_ids = np.load(__import__("conftest").DATA / "rvc_fixture_ids.npy").astype(np.int64)
    distances, ids = client.search("rvc", queries.astype(dtype))
    assert distances.shape == ids.shape == (len(queries), 8)
    assert distances.dtype == np.float32 and ids.dtype == np.int64
    assert np.all(np.diff(distances, axis=1) >= 0)
    if dtype == np.float32:
        np.testing.assert_array_equal(ids, expected_ids)
    distances, ids, vectors = client.search("rvc", queries[:2].astype(dtype), k=3,
                                            with_vectors=True)
    assert vectors.shape == (2, 3, DIM) and vectors.dtype == dtype
    squared = ((vectors.astype(np.float32) - queries[:2, None].astype(dtype)) ** 2).sum(axis=2)
    np.testing.assert_allclose(squared, distances, rtol=1e-2)


def test_search_one_frame(client, queries):
    distances, ids, vectors = client.search("rvc", queries[0], k=4, with_vectors=True)
    assert distances.shape == ids.shape == (4,) and vectors.shape == (4, DIM)


def test_speakers_speaker_load_unload(client, queries):
    speakers = client.speakers()
    assert [s.name for s in speakers] == ["rvc"]
    info = client.speaker("rvc")
    assert isinstance(info, SpeakerInfo)
    assert (info.dim, info.num_vectors, info.description, info.nlist) == (DIM, 1000, "IVF25,Flat", 25)
    assert client.unload("rvc").state == SpeakerInfo.STATE_UNLOADED
    assert client.speaker("rvc").state == SpeakerInfo.STATE_UNLOADED
    client.blend("rvc", queries)  # loads it again
    assert client.speaker("rvc").state == SpeakerInfo.STATE_LOADED
    client.unload("rvc")
    assert client.load("rvc", warmup=True).state == SpeakerInfo.STATE_LOADED


def nan_frames(queries):
    frames = queries[:4].copy()
    frames[3, 17] = np.nan
    return frames


@pytest.mark.parametrize("call,error,code,text", [
    (lambda c, q: c.blend("bob", q), NotFound, "NOT_FOUND", "speaker 'bob' not found"),
    (lambda c, q: c.search("bob", q), NotFound, "NOT_FOUND", "speaker 'bob' not found"),
    (lambda c, q: c.speaker("bob"), NotFound, "NOT_FOUND", "speaker 'bob' not found"),
    (lambda c, q: c.load("bob"), NotFound, "NOT_FOUND", "speaker 'bob' not found"),
    (lambda c, q: c.unload("bob"), NotFound, "NOT_FOUND", "speaker 'bob' not found"),
    (lambda c, q: c.blend("../x", q), InvalidArgument, "INVALID_ARGUMENT", "../x"),
    (lambda c, q: c.speaker("../x"), InvalidArgument, "INVALID_ARGUMENT", "../x"),
    (lambda c, q: c.blend("rvc", q[:, :128]), InvalidArgument, "INVALID_ARGUMENT",
     "frames have dim 128, index has dim 256"),
    (lambda c, q: c.search("rvc", q[:, :128].astype(np.float16)), InvalidArgument,
     "INVALID_ARGUMENT", "frames have dim 128, index has dim 256"),
    (lambda c, q: c.blend("rvc", nan_frames(q)), InvalidArgument, "INVALID_ARGUMENT",
     "value at frame 3, column 17 is nan"),
    (lambda c, q: c.blend("rvc", nan_frames(q).astype(np.float16)), InvalidArgument,
     "INVALID_ARGUMENT", "value at frame 3, column 17 is nan"),
    (lambda c, q: c.blend("rvc", q[:0]), InvalidArgument, "INVALID_ARGUMENT", "speaker 'rvc'"),
    (lambda c, q: c.blend("rvc", q, k=2000), InvalidArgument, "INVALID_ARGUMENT", "k"),
    (lambda c, q: c.blend("rvc", q, index_rate=1.5), InvalidArgument, "INVALID_ARGUMENT",
     "index_rate"),
    (lambda c, q: c.blend("rvc", q, nprobe=26), InvalidArgument, "INVALID_ARGUMENT", "nprobe"),
    (lambda c, q: c.search("rvc", q, k=2000), InvalidArgument, "INVALID_ARGUMENT", "k"),
])
def test_bad_input_raises_the_servers_error(client, queries, call, error, code, text):
    with pytest.raises(error) as raised:
        call(client, queries)
    assert raised.value.code == getattr(grpc.StatusCode, code)
    assert text in raised.value.message
    assert str(raised.value).startswith(code + ": ")


@pytest.mark.parametrize("call,text", [
    (lambda c, q: c.blend("rvc", q.astype(np.int16)), "frames: dtype int16 is not floating"),
    (lambda c, q: c.blend("rvc", q[None]), "frames: shape (1, 24, 256) is neither"),
    (lambda c, q: c.blend("rvc", q, k=-1), "k is -1: give an integer >= 0"),
    (lambda c, q: c.blend("rvc", q, nprobe=1.5), "nprobe is 1.5: give an integer >= 0"),
    (lambda c, q: c.blend("rvc", q, index_rate="high"), "index_rate is 'high'"),
    (lambda c, q: c.blend("rvc", q, k=1 << 32), "k is 4294967296: too large"),
])
def test_bad_input_found_by_the_client(client, queries, call, text):
    with pytest.raises(InvalidArgument) as raised:
        call(client, queries)
    assert text in raised.value.message
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_unreachable_server_is_unavailable():
    from conftest import free_port
    with Client(f"127.0.0.1:{free_port()}", timeout=5, retries=0) as client:
        with pytest.raises(Unavailable) as raised:
            client.speakers()
    assert isinstance(raised.value, TimbreError)


@pytest.mark.parametrize("kwargs,text", [
    (dict(target=""), "target is empty"),
    (dict(target="h:1", retries=-1), "retries is -1"),
    (dict(target="h:1", cert="c.pem"), "cert and key go together"),
    (dict(target="h:1", token="t" * 20), "a bearer token needs TLS"),
    (dict(target="h:1", ca="/missing/ca.pem"), "cannot read ca '/missing/ca.pem'"),
])
def test_bad_client_options(kwargs, text):
    target = kwargs.pop("target")
    with pytest.raises(InvalidArgument, match=text):
        Client(target, **kwargs)


def test_session_answers_blocks_in_order(client, queries, expected):
    with client.session("rvc") as session:
        for start in range(0, 24, 8):
            out = session.blend(queries[start:start + 8])
            np.testing.assert_allclose(out, expected[start:start + 8], rtol=1e-5, atol=1e-5)
        half = session.blend(queries[:4].astype(np.float16))
        assert half.dtype == np.float16 and half.shape == (4, DIM)
        np.testing.assert_array_equal(session.blend(queries[:4], index_rate=0), queries[:4])
        np.testing.assert_array_equal(session.blend(queries[4:8]), queries[4:8])  # stays 0
        assert (session.blocks, session.reopens) == (6, 0)
        assert session.version.startswith("added_IVF25")


def test_session_errors_end_the_session(client, queries):
    with client.session("rvc") as session:
        session.blend(queries[:2])
        with pytest.raises(InvalidArgument, match="frames have dim 128, index has dim 256") as raised:
            session.blend(queries[:2, :128])
        assert "block 1" in raised.value.message
    with client.session("bob") as session:
        with pytest.raises(NotFound, match="speaker 'bob' not found"):
            session.blend(queries[:2])
    session = client.session("rvc")
    session.close()
    with pytest.raises(FailedPrecondition, match="the session is closed"):
        session.blend(queries[:2])
