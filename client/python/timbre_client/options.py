"""Per-call retrieval options (timbre.v1.RetrievalOptions) from keyword arguments."""
from typing import Optional

from timbre_client._proto.timbre.v1 import timbre_pb2
from timbre_client.errors import InvalidArgument


def retrieval_options(k: Optional[int] = None, index_rate: Optional[float] = None,
                      nprobe: Optional[int] = None,
                      k_factor: Optional[int] = None) -> timbre_pb2.RetrievalOptions:
    """The options message; None leaves a field at the server's default.

    k: neighbours per frame (server default 8, range 1..1024); index_rate: weight of the
    retrieved frame in [0, 1] (default 0.75); nprobe: IVF lists probed (default: the index's);
    k_factor: re-ranking factor of refined indexes (default: the version's). The server checks
    the ranges; here only the types are checked. Raises InvalidArgument naming the option.
    """
    options = timbre_pb2.RetrievalOptions()
    for name, value in (("k", k), ("nprobe", nprobe), ("k_factor", k_factor)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidArgument(f"{name} is {value!r}: give an integer >= 0")
        if value >= 1 << 32:
            raise InvalidArgument(f"{name} is {value}: too large")
        setattr(options, name, value)
    if index_rate is not None:
        if isinstance(index_rate, bool) or not isinstance(index_rate, (int, float)):
            raise InvalidArgument(f"index_rate is {index_rate!r}: give a number in [0, 1]")
        options.index_rate = float(index_rate)
    return options
