"""timbre_client.frames: numpy <-> timbre.v1.Frames."""
import numpy as np
import pytest

from timbre_client import InvalidArgument
from timbre_client._proto.timbre.v1 import timbre_pb2
from timbre_client.frames import decode_frames, encode_frames


@pytest.mark.parametrize("dtype,proto", [(np.float32, timbre_pb2.DTYPE_FLOAT32),
                                         (np.float16, timbre_pb2.DTYPE_FLOAT16)])
def test_round_trip_keeps_shape_dtype_and_values(dtype, proto):
    frames = np.arange(12, dtype=dtype).reshape(3, 4) / 7
    message, single = encode_frames(frames)
    assert (message.dtype, message.num_frames, message.dim, single) == (proto, 3, 4, False)
    assert len(message.data) == 12 * np.dtype(dtype).itemsize
    decoded = decode_frames(message)
    assert decoded.dtype == dtype and decoded.flags.writeable
    np.testing.assert_array_equal(decoded, frames)


def test_one_frame_travels_as_one_row_and_comes_back_1d():
    message, single = encode_frames(np.ones(5, np.float32))
    assert (message.num_frames, message.dim, single) == (1, 5, True)
    assert decode_frames(message, single).shape == (5,)


def test_non_contiguous_big_endian_and_float64_are_converted():
    base = np.arange(40, dtype=np.float32).reshape(4, 10)
    message, _ = encode_frames(base[:, ::2])
    np.testing.assert_array_equal(decode_frames(message), base[:, ::2])
    message, _ = encode_frames(base.astype(">f4"))
    np.testing.assert_array_equal(decode_frames(message), base)
    message, _ = encode_frames(base.astype(np.float64))
    assert message.dtype == timbre_pb2.DTYPE_FLOAT32
    np.testing.assert_array_equal(decode_frames(message), base)


@pytest.mark.parametrize("frames,text", [
    (np.ones((2, 3), np.int32), "dtype int32 is not floating point"),
    (np.ones((2, 3), bool), "dtype bool is not floating point"),
    (np.ones((2, 3, 4), np.float32), "shape (2, 3, 4) is neither"),
    (np.float32(1.0), "shape () is neither"),
])
def test_refuses_what_is_not_float_frames(frames, text):
    with pytest.raises(InvalidArgument, match=text.replace("(", r"\(").replace(")", r"\)")) as error:
        encode_frames(frames)
    assert isinstance(error.value, ValueError)


def test_decode_refuses_data_that_does_not_match_the_shape():
    message = timbre_pb2.Frames(dtype=timbre_pb2.DTYPE_FLOAT32, num_frames=2, dim=3, data=b"\0" * 20)
    with pytest.raises(InvalidArgument, match="20 bytes of data, expected 2 x 3 x 4"):
        decode_frames(message)
    message.dtype = timbre_pb2.DTYPE_UNSPECIFIED
    with pytest.raises(InvalidArgument, match="unknown dtype"):
        decode_frames(message)
