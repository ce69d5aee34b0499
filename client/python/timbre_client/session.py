"""BlendSession: a real-time BlendStream session that survives a server drain or replica loss.

Each `blend(block)` sends one block and returns its blended answer, in order. When the stream
ends with UNAVAILABLE (a draining server's "open a new stream to continue", a replica gone, a
connection reset) or is cut by a proxy whose replica died (see stream_was_cut) the session opens a new stream on the same channel, with the speaker and the
session's options in its first message, and sends again the block that was sent but not answered:
no answered block is lost and none is answered twice. It reopens at most `retries` times in a
row without an answer in between, waiting 0.05 s doubling to 1 s; any other status ends the
session with that error.

Thread-compatible: one thread at a time (a voice changer's audio thread).
"""
import queue
import time
from typing import Iterator, Optional

import grpc
import numpy as np

from timbre_client._proto.timbre.v1 import timbre_pb2
from timbre_client.channel import affinity_metadata, backoff_seconds
from timbre_client.errors import FailedPrecondition, TimbreError, Unavailable, from_rpc_error
from timbre_client.frames import decode_frames, encode_frames
from timbre_client.options import retrieval_options

_END = None  # put on a request queue: half-closes its stream



def stream_was_cut(error: grpc.RpcError) -> bool:
    """Whether a stream that ended with `error` can go on on a new stream: UNAVAILABLE, or a proxy
    whose replica died mid-stream, which ends the stream without a gRPC status (HAProxy: UNKNOWN
    "No status received") or resets it (nginx: INTERNAL "Received RST_STREAM with error code 2";
    a replica whose shutdown grace ran out: CANCELLED "Received RST_STREAM with error code 8").
    timbre's servers never end a stream either way while they serve, and a cancel of the
    client's own reads "Cancelled". The same rule as the C++ client's."""
    code, details = error.code(), error.details() or ""
    return (code == grpc.StatusCode.UNAVAILABLE
            or (code == grpc.StatusCode.UNKNOWN and details == "No status received")
            or (code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.CANCELLED)
                and details.startswith("Received RST_STREAM")))

class BlendSession:
    """One speaker's real-time session; make it with Client.session(), close it (or use `with`)."""

    def __init__(self, stub, speaker: str, options: timbre_pb2.RetrievalOptions, retries: int,
                 timeout: Optional[float]):
        self._stub = stub
        self._speaker = speaker
        self._options = options
        self._retries = retries
        self._timeout = timeout
        self._requests: Optional[queue.SimpleQueue] = None
        self._responses = None
        self._first = True
        self._closed = False
        self.blocks = 0
        """Blocks answered so far."""
        self.reopens = 0
        """Streams reopened after UNAVAILABLE so far."""
        self.version = ""
        """Version of the speaker's index that answered the last block."""

    def blend(self, block, *, k: Optional[int] = None, index_rate: Optional[float] = None,
              nprobe: Optional[int] = None, k_factor: Optional[int] = None) -> np.ndarray:
        """Blends one block: `block` is [T, D] (or one [D] frame) float32 or float16.

        Returns the blended block, same shape and dtype. Options given here replace the
        session's from this block on (for example a moved index-rate slider).
        Raises a TimbreError subclass: the server's status (with the block's number in its
        message), Unavailable after `retries` reopenings without an answer, FailedPrecondition
        on a closed session, InvalidArgument for an array that is not float frames.
        """
        if self._closed:
            raise FailedPrecondition("the session is closed")
        frames, single = encode_frames(block, "block")
        request = timbre_pb2.BlendStreamRequest(frames=frames)
        if any(value is not None for value in (k, index_rate, nprobe, k_factor)):
            changed = retrieval_options(k, index_rate, nprobe, k_factor)
            merged = timbre_pb2.RetrievalOptions()
            merged.CopyFrom(self._options)
            merged.MergeFrom(changed)
            self._options = merged
            request.options.CopyFrom(merged)
        failures = 0
        while True:
            try:
                response = self._exchange(request)
            except grpc.RpcError as error:
                self._abandon_stream()
                if not stream_was_cut(error) or failures >= self._retries:
                    raise from_rpc_error(error) from None
            except _StreamEnded as ended:
                self._abandon_stream()
                if failures >= self._retries:
                    raise Unavailable(str(ended)) from None
            else:
                self.blocks += 1
                self.version = response.version
                return decode_frames(response.frames, single)
            failures += 1
            self.reopens += 1
            time.sleep(backoff_seconds(failures))

    def close(self) -> None:
        """Half-closes the stream and waits for its end. Never raises; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._responses is not None:
            self._requests.put(_END)
            try:
                for _ in self._responses:
                    pass
            except grpc.RpcError:
                pass  # the session is over either way
            self._responses = None

    def __enter__(self) -> "BlendSession":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _exchange(self, request: timbre_pb2.BlendStreamRequest):
        """Sends `request` on the open stream (opening one if needed) and reads its answer."""
        if self._responses is None:
            self._open_stream()
        if self._first:
            first = timbre_pb2.BlendStreamRequest(speaker=self._speaker, frames=request.frames)
            first.options.CopyFrom(self._options)
            request = first
            self._first = False
        self._requests.put(request)
        try:
            return next(self._responses)
        except StopIteration:
            raise _StreamEnded("the stream ended without answering the block") from None

    def _open_stream(self) -> None:
        requests: queue.SimpleQueue = queue.SimpleQueue()
        self._requests = requests
        self._responses = self._stub.BlendStream(_drain(requests), timeout=self._timeout,
                                                 metadata=affinity_metadata(self._speaker))
        self._first = True

    def _abandon_stream(self) -> None:
        # Cancelling tells a server that still waits for this stream's next message that it is
        # over, so a draining server can finish its shutdown before the stream is reopened.
        if self._responses is not None:
            self._responses.cancel()
        if self._requests is not None:
            self._requests.put(_END)  # ends the request iterator's thread
        self._requests = None
        self._responses = None


class _StreamEnded(TimbreError):
    """The server closed the stream with OK before answering a block."""


def _drain(requests: queue.SimpleQueue) -> Iterator[timbre_pb2.BlendStreamRequest]:
    while True:
        request = requests.get()
        if request is _END:
            return
        yield request
