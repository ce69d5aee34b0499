"""numpy arrays to and from timbre.v1.Frames (packed little-endian float32 or float16).

encode_frames accepts a [T, D] or [D] array-like (numpy arrays, CPU torch tensors, lists) of
float32 or float16; other floating dtypes (float64) are sent as float32. Non-contiguous and
big-endian arrays are converted. Integer, boolean, complex and object arrays, and arrays of more
than two dimensions, raise InvalidArgument. Empty batches, NaN or Inf and a dim the speaker
does not have are left for the server to refuse, so its message is the one users see.
"""
from typing import Tuple

import numpy as np

from timbre_client._proto.timbre.v1 import timbre_pb2
from timbre_client.errors import InvalidArgument

_TO_PROTO = {np.dtype(np.float32): timbre_pb2.DTYPE_FLOAT32,
             np.dtype(np.float16): timbre_pb2.DTYPE_FLOAT16}
_FROM_PROTO = {timbre_pb2.DTYPE_FLOAT32: np.dtype("<f4"), timbre_pb2.DTYPE_FLOAT16: np.dtype("<f2")}


def as_frame_matrix(frames, what: str = "frames") -> Tuple[np.ndarray, bool]:
    """(a C-contiguous little-endian [T, D] float32/float16 array, whether the input was 1-D)."""
    array = np.asarray(frames)
    if array.dtype.kind != "f":
        raise InvalidArgument(f"{what}: dtype {array.dtype} is not floating point; "
                              "send float32 or float16")
    if array.ndim not in (1, 2):
        raise InvalidArgument(f"{what}: shape {array.shape} is neither [frames, dim] nor [dim]")
    dtype = np.dtype("<f2") if array.dtype.itemsize == 2 else np.dtype("<f4")
    single = array.ndim == 1
    matrix = np.ascontiguousarray(array.reshape(1, -1) if single else array, dtype=dtype)
    return matrix, single


def encode_frames(frames, what: str = "frames") -> Tuple[timbre_pb2.Frames, bool]:
    """(the Frames message of `frames`, whether the input was a single 1-D frame)."""
    matrix, single = as_frame_matrix(frames, what)
    message = timbre_pb2.Frames(dtype=_TO_PROTO[matrix.dtype.newbyteorder("=")],
                                num_frames=matrix.shape[0], dim=matrix.shape[1],
                                data=matrix.tobytes())
    return message, single


def decode_frames(message: timbre_pb2.Frames, single: bool = False) -> np.ndarray:
    """A writable [num_frames, dim] array (or [dim] when `single`) of the message's dtype.

    Raises InvalidArgument (naming the sizes) when the data does not match the shape.
    """
    dtype = _FROM_PROTO.get(message.dtype)
    if dtype is None:
        raise InvalidArgument(f"answer has unknown dtype {message.dtype}")
    expected = message.num_frames * message.dim * dtype.itemsize
    if len(message.data) != expected:
        raise InvalidArgument(f"answer has {len(message.data)} bytes of data, expected "
                              f"{message.num_frames} x {message.dim} x {dtype.itemsize}")
    array = np.frombuffer(message.data, dtype=dtype).astype(dtype.newbyteorder("="))
    array = array.reshape(message.num_frames, message.dim)
    return array[0] if single else array
