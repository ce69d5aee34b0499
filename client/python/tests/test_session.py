"""timbre_client.BlendSession: blocks answered in order, and the stream reopened after
UNAVAILABLE with the unanswered block sent again (no answered block lost, none answered twice):
scripted on a fake server, then across a real timbre-server drain (SIGTERM) to a replica."""
import signal
import time

import grpc
import numpy as np
import pytest

from timbre_client import Client, FailedPrecondition, TimbreError, Unavailable
from conftest import wait_for
from fake_server import ANSWER, END, FakeServer


@pytest.fixture
def fake():
    server = FakeServer()
    yield server
    server.stop()


def blocks(count, frames=2, dim=4):
    return [np.full((frames, dim), number, np.float32) for number in range(count)]


def test_unanswered_block_is_sent_again_on_a_new_stream(fake):
    # Stream 0 answers block 0 and ends with UNAVAILABLE when block 1 arrives.
    fake.stream_plan = lambda stream, block: (
        grpc.StatusCode.UNAVAILABLE if (stream, block) == (0, 1) else ANSWER)
    with Client(fake.target, timeout=10) as client:
        with client.session("alice", index_rate=0.5) as session:
            answers = [session.blend(block) for block in blocks(3)]
            assert (session.blocks, session.reopens) == (3, 1)
    for number, answer in enumerate(answers):
        assert np.all(answer == number)
    first, second = fake.streams
    assert [request.speaker for request in first] == ["alice", ""]
    assert [request.speaker for request in second] == ["alice", ""]
    sent = [np.frombuffer(r.frames.data, np.float32)[0] for s in fake.streams for r in s]
    assert sent == [0, 1, 1, 2]  # block 1 sent again, once
    assert second[0].options.index_rate == 0.5  # the session's options travel again
    assert fake.headers("BlendStream") == ["alice", "alice"]


def test_options_changed_in_the_session_travel_with_the_reopened_stream(fake):
    fake.stream_plan = lambda stream, block: (
        grpc.StatusCode.UNAVAILABLE if (stream, block) == (0, 2) else ANSWER)
    with Client(fake.target, timeout=10) as client, client.session("alice", k=4) as session:
        session.blend(blocks(1)[0])
        session.blend(blocks(1)[0], index_rate=0.25)
        session.blend(blocks(1)[0])
    assert fake.streams[0][1].options.index_rate == 0.25
    reopened = fake.streams[1][0]
    assert (reopened.options.k, reopened.options.index_rate) == (4, 0.25)


def test_a_stream_lost_after_every_block_keeps_going(fake):
    # Each stream answers one block, then ends UNAVAILABLE: never two reopenings in a row.
    fake.stream_plan = lambda stream, block: ANSWER if block == 0 else grpc.StatusCode.UNAVAILABLE
    with Client(fake.target, timeout=10, retries=1) as client, client.session("alice") as session:
        answers = [session.blend(block) for block in blocks(5)]
        assert session.reopens == 4
    assert [int(answer[0, 0]) for answer in answers] == [0, 1, 2, 3, 4]


def test_gives_up_after_retries_reopenings_in_a_row(fake):
    fake.stream_plan = lambda stream, block: grpc.StatusCode.UNAVAILABLE
    with Client(fake.target, timeout=10, retries=2) as client, client.session("alice") as session:
        started = time.monotonic()
        with pytest.raises(Unavailable, match="ends at block 0"):
            session.blend(blocks(1)[0])
        assert time.monotonic() - started >= 0.05 + 0.1  # the backoff between reopenings
        assert session.reopens == 2
    # Each of the 3 streams is itself retried by gRPC's policy (3 attempts) before it fails.
    assert len(fake.streams) == 9


def test_no_reopening_with_retries_zero(fake):
    fake.stream_plan = lambda stream, block: grpc.StatusCode.UNAVAILABLE
    with Client(fake.target, timeout=10, retries=0) as client, client.session("alice") as session:
        with pytest.raises(Unavailable):
            session.blend(blocks(1)[0])
        assert session.reopens == 0
    assert len(fake.streams) == 1


def test_a_stream_that_ends_without_an_answer_counts_as_unavailable(fake):
    fake.stream_plan = lambda stream, block: END if stream == 0 else ANSWER
    with Client(fake.target, timeout=10, retries=1) as client, client.session("alice") as session:
        assert np.all(session.blend(blocks(1)[0]) == 0)
        assert session.reopens == 1
    fake.stream_plan = lambda stream, block: END
    with Client(fake.target, timeout=10, retries=0) as client, client.session("alice") as session:
        with pytest.raises(Unavailable, match="the stream ended without answering the block"):
            session.blend(blocks(1)[0])


@pytest.mark.parametrize("cut", [
    (grpc.StatusCode.UNKNOWN, "No status received"),                       # HAProxy
    (grpc.StatusCode.INTERNAL, "Received RST_STREAM with error code 2"),   # nginx
    (grpc.StatusCode.CANCELLED, "Received RST_STREAM with error code 8"),  # shutdown grace ran out
])
def test_a_stream_cut_by_a_proxy_is_reopened(fake, cut):
    fake.stream_plan = lambda stream, block: cut if (stream, block) == (0, 1) else ANSWER
    with Client(fake.target, timeout=10) as client, client.session("alice") as session:
        answers = [session.blend(block) for block in blocks(3)]
        assert (session.blocks, session.reopens) == (3, 1)
    for number, answer in enumerate(answers):
        assert np.all(answer == number)
    sent = [np.frombuffer(r.frames.data, np.float32)[0] for s in fake.streams for r in s]
    assert sent == [0, 1, 1, 2]


def test_the_same_codes_with_other_messages_end_the_session(fake):
    fake.stream_plan = lambda stream, block: (
        (grpc.StatusCode.INTERNAL, "index corrupt") if block == 0 else ANSWER)
    with Client(fake.target, timeout=10) as client, client.session("alice") as session:
        with pytest.raises(TimbreError, match="index corrupt") as raised:
            session.blend(blocks(1)[0])
        assert raised.value.code == grpc.StatusCode.INTERNAL
        assert session.reopens == 0


def test_other_codes_end_the_session_without_reopening(fake):
    fake.stream_plan = lambda stream, block: (
        ANSWER if block == 0 else grpc.StatusCode.FAILED_PRECONDITION)
    with Client(fake.target, timeout=10) as client, client.session("alice") as session:
        session.blend(blocks(1)[0])
        with pytest.raises(FailedPrecondition, match="stream 0 ends at block 1"):
            session.blend(blocks(1)[0])
        assert session.reopens == 0
    assert len(fake.streams) == 1


def test_session_moves_to_a_replica_across_a_real_drain(start_server, queries):
    """Server A drains on SIGTERM while replica B listens on the same port (SO_REUSEPORT, as
    replicas behind one address): the session loses no block and answers none twice."""
    a = start_server("--drain_grace=1s", "--shutdown_grace=2s")
    with Client(a.target, timeout=20) as client:
        expected = [client.blend("rvc", queries[i:i + 4]) for i in range(0, 24, 4)]
        session = client.session("rvc")
        answered = []

        def send():
            number = len(answered)
            out = session.blend(queries[(number * 4) % 24:(number * 4) % 24 + 4])
            np.testing.assert_allclose(out, expected[number % 6], rtol=1e-6, atol=1e-6)
            answered.append(number)

        for _ in range(3):
            send()
        b = start_server("--drain_grace=0s", port=a.port)
        a.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while a.process.poll() is None and time.monotonic() < deadline:
            send()
            time.sleep(0.02)
        assert a.process.wait(30) == 0
        for _ in range(5):
            send()
        assert answered == list(range(len(answered)))
        assert session.reopens >= 1
        assert session.blocks == len(answered)
        session.close()
    assert "draining: ending 1 open streams after their current block" in a.log_text()
    b.stop()
