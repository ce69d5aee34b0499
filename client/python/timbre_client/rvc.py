"""A drop-in for RVC's retrieval step: the speaker's index stays on a timbre server.

RVC's pipeline holds `index` (faiss) and `big_npy` (every stored frame) in process and does:

    score, ix = index.search(npy, k=8)
    weight = np.square(1 / score); weight /= weight.sum(axis=1, keepdims=True)
    npy = np.sum(big_npy[ix] * np.expand_dims(weight, axis=2), axis=1)
    feats = npy * index_rate + (1 - index_rate) * feats

RemoteIndex.retrieve(feats, index_rate) returns the result of those four lines in one call,
computed by the server on the same index (equal to float32 rounding), with RVC's edge cases
repaired (an exact match takes all the weight instead of giving NaN; a missing neighbour is
skipped instead of reading the last row).
"""
from typing import Optional
from urllib.parse import urlsplit

import numpy as np

from timbre_client.client import Client
from timbre_client.errors import InvalidArgument
from timbre_client.session import BlendSession


class RemoteIndex:
    """Stands where RVC holds `index` and `big_npy` for one speaker.

    client: a timbre_client.Client; speaker: the speaker's name on the server; k: neighbours
    (RVC's 8). realtime: send the calls over one BlendStream session (what a real-time voice
    changer should use: one stream, reopened across a server drain) instead of unary calls.
    Thread-compatible (one audio thread).
    """

    def __init__(self, client: Client, speaker: str, *, k: int = 8, realtime: bool = False):
        self.client = client
        self.speaker = speaker
        self.k = k
        self.realtime = realtime
        self._session: Optional[BlendSession] = (
            client.session(speaker, k=k) if realtime else None)

    @classmethod
    def open(cls, url: str, *, realtime: bool = False, **client_options) -> "RemoteIndex":
        """A RemoteIndex from "timbre://host:port/speaker" (TLS: "timbre+tls://...").

        realtime (or the query "?realtime=1"): one BlendStream session. client_options go to
        Client (ca, token, timeout, retries, ...). Raises InvalidArgument for another scheme or
        a URL without host or speaker.
        """
        parts = urlsplit(url)
        speaker = parts.path.strip("/")
        if parts.scheme not in ("timbre", "timbre+tls") or not parts.netloc or not speaker:
            raise InvalidArgument(f"'{url}' is not timbre://host:port/speaker")
        if parts.scheme == "timbre+tls":
            client_options.setdefault("tls", True)
        realtime = realtime or "realtime=1" in parts.query.split("&")
        return cls(Client(parts.netloc, **client_options), speaker, realtime=realtime)

    def retrieve(self, feats, index_rate: float) -> np.ndarray:
        """RVC's four lines: feats [T, D] float16 (half mode) or float32 -> same shape and dtype.

        index_rate: weight of the retrieved frames, in [0, 1]. Raises the client's TimbreError
        subclasses (InvalidArgument for frames of another dim, NotFound, Unavailable, ...).
        """
        if self._session is not None:
            return self._session.blend(feats, index_rate=index_rate)
        return self.client.blend(self.speaker, feats, k=self.k, index_rate=index_rate)

    def close(self) -> None:
        """Closes the session (if realtime); the client stays open."""
        if self._session is not None:
            self._session.close()
