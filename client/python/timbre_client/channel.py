"""The gRPC channel of a Client: credentials, message limits and the retry policy.

The retry policy is the one the C++ client uses (the same service config), so a Python client
behind a load balancer behaves as a C++ one: every method of timbre.v1.Timbre and the read-only
methods of timbre.v1.IndexBuilder are retried on UNAVAILABLE, up to `retries` times with
exponential backoff (0.05 s doubling to 1 s). gRPC caps attempts at 5 (retries=4, the default);
retries=0 sends no retry policy.
"""
import json
import time
from typing import List, Optional, Tuple

import grpc

from timbre_client.errors import InvalidArgument

# Backoff of retried calls and of reopened sessions: initial and largest wait, in seconds.
INITIAL_BACKOFF_SECONDS = 0.05
MAX_BACKOFF_SECONDS = 1.0
BACKOFF_MULTIPLIER = 2
# The IndexBuilder methods that change nothing on the server, so a retry is always safe.
READ_ONLY_BUILDER_METHODS = ("GetJob", "ListJobs", "GetFeatureSet", "ListFeatureSets", "WatchJob")


def service_config(retries: int) -> Optional[str]:
    """The channel's service config JSON for `retries` retries; None for 0 (no retry policy)."""
    if retries == 0:
        return None
    names = [{"service": "timbre.v1.Timbre"}] + [
        {"service": "timbre.v1.IndexBuilder", "method": method}
        for method in READ_ONLY_BUILDER_METHODS]
    policy = {"maxAttempts": retries + 1, "initialBackoff": f"{INITIAL_BACKOFF_SECONDS}s",
              "maxBackoff": f"{MAX_BACKOFF_SECONDS:g}s", "backoffMultiplier": BACKOFF_MULTIPLIER,
              "retryableStatusCodes": ["UNAVAILABLE"]}
    return json.dumps({"methodConfig": [{"name": names, "retryPolicy": policy}]})


def backoff_seconds(attempt: int) -> float:
    """Wait before reopening a session for the `attempt`-th time in a row (1-based)."""
    return min(INITIAL_BACKOFF_SECONDS * BACKOFF_MULTIPLIER ** (attempt - 1), MAX_BACKOFF_SECONDS)


def _read(what: str, path: Optional[str]) -> Optional[bytes]:
    if path is None:
        return None
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise InvalidArgument(f"cannot read {what} '{path}': {error.strerror}") from None


def make_channel(target: str, *, tls: bool, ca: Optional[str], cert: Optional[str],
                 key: Optional[str], server_name: Optional[str], token: Optional[str],
                 retries: int, max_message_bytes: int) -> grpc.Channel:
    """A channel to `target`; TLS when `tls` or any of ca/cert/key/server_name is given.

    Raises InvalidArgument for an empty target, a negative retry count, cert without key (or
    the reverse), a token without TLS, or an unreadable TLS file (naming it).
    """
    if not target:
        raise InvalidArgument("target is empty: give 'host:port'")
    if not isinstance(retries, int) or retries < 0:
        raise InvalidArgument(f"retries is {retries!r}: give a count >= 0 (0 disables retries)")
    if (cert is None) != (key is None):
        raise InvalidArgument("cert and key go together: give both or neither")
    options: List[Tuple[str, object]] = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.enable_retries", 1),
    ]
    config = service_config(retries)
    if config is not None:
        options.append(("grpc.service_config", config))
    tls = tls or any(value is not None for value in (ca, cert, key, server_name))
    if not tls:
        if token is not None:
            raise InvalidArgument("a bearer token needs TLS (tls=True or ca=...): "
                                  "it would travel in plain text")
        return grpc.insecure_channel(target, options=options)
    credentials = grpc.ssl_channel_credentials(root_certificates=_read("ca", ca),
                                               private_key=_read("key", key),
                                               certificate_chain=_read("cert", cert))
    if token is not None:
        credentials = grpc.composite_channel_credentials(
            credentials, grpc.access_token_call_credentials(token))
    if server_name is not None:
        options.append(("grpc.ssl_target_name_override", server_name))
    return grpc.secure_channel(target, credentials, options=options)


def affinity_metadata(speaker: str) -> Optional[Tuple[Tuple[str, str], ...]]:
    """The metadata of a call about `speaker`: x-timbre-speaker, which load balancers route on.

    None for a name that cannot travel in a header (not printable ASCII): the server then refuses
    the name itself with INVALID_ARGUMENT.
    """
    if speaker and speaker.isascii() and speaker.isprintable():
        return (("x-timbre-speaker", speaker),)
    return None


def _ignore_state(state: grpc.ChannelConnectivity) -> None:
    pass


def watch_connection(channel: grpc.Channel) -> None:
    """Keeps `channel`'s connection read between calls (a connectivity watch).

    grpc-python reads a connection only while a call is in progress: without a watch, a draining
    server's GOAWAY is seen only with the next call, which then reaches the server as it shuts
    down and is CANCELLED instead of going to a new connection (or another replica).
    """
    channel.subscribe(_ignore_state)


def unwatch_connection(channel: grpc.Channel, timeout: float = 1.0) -> None:
    """Ends the watch and waits (up to `timeout` s, 0.2 s at most in practice) for grpc-python's
    polling thread to stop, which would otherwise fail on the closed channel."""
    channel.unsubscribe(_ignore_state)
    state = getattr(channel, "_connectivity_state", None)
    deadline = time.monotonic() + timeout
    while state is not None and state.polling and time.monotonic() < deadline:
        time.sleep(0.005)
