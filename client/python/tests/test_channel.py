"""timbre_client.channel: the speaker-affinity header and the retry policy, shared with the C++
client, checked on the wire against a scripted gRPC server."""
import json

import grpc
import numpy as np
import pytest

from timbre_client import Client, InvalidArgument, ResourceExhausted, Unavailable
from timbre_client.channel import affinity_metadata, service_config
from fake_server import FakeServer

FRAMES = np.ones((2, 4), np.float32)


@pytest.fixture
def fake():
    server = FakeServer()
    yield server
    server.stop()


def test_service_config_is_the_shared_contract():
    config = json.loads(service_config(4))
    (method_config,) = config["methodConfig"]
    assert method_config["retryPolicy"] == {
        "maxAttempts": 5, "initialBackoff": "0.05s", "maxBackoff": "1s", "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"]}
    assert method_config["name"] == [{"service": "timbre.v1.Timbre"}] + [
        {"service": "timbre.v1.IndexBuilder", "method": m}
        for m in ("GetJob", "ListJobs", "GetFeatureSet", "ListFeatureSets", "WatchJob")]
    assert json.loads(service_config(1))["methodConfig"][0]["retryPolicy"]["maxAttempts"] == 2
    assert service_config(0) is None


def test_affinity_metadata():
    assert affinity_metadata("alice") == (("x-timbre-speaker", "alice"),)
    assert affinity_metadata("") is None and affinity_metadata("al\nice") is None
    assert affinity_metadata("élise") is None


def test_speaker_calls_carry_the_speaker_header_and_others_none(fake):
    with Client(fake.target, timeout=10) as client:
        client.blend("alice", FRAMES)
        client.search("alice", FRAMES)
        client.speaker("alice")
        client.load("alice")
        client.unload("alice")
        with client.session("alice") as session:
            session.blend(FRAMES)
            session.blend(FRAMES)
        client.speakers()
        client.job("job-1")
        client.jobs()
        client.cancel("job-1")
    for method in ("Blend", "Search", "GetSpeaker", "LoadSpeaker", "UnloadSpeaker", "BlendStream"):
        assert fake.headers(method) == ["alice"], method
    for method in ("ListSpeakers", "GetJob", "ListJobs", "CancelJob"):
        assert fake.headers(method) == [None], method


def test_unavailable_is_retried_up_to_four_times_by_default(fake):
    fake.failures["Blend"] = (grpc.StatusCode.UNAVAILABLE, 4)
    with Client(fake.target, timeout=10) as client:
        np.testing.assert_array_equal(client.blend("alice", FRAMES), FRAMES)
    assert fake.attempts["Blend"] == 5
    assert fake.headers("Blend") == ["alice"] * 5


def test_retries_give_up_after_maxattempts(fake):
    fake.failures["GetSpeaker"] = (grpc.StatusCode.UNAVAILABLE, 100)
    with Client(fake.target, timeout=10, retries=2) as client:
        with pytest.raises(Unavailable, match="GetSpeaker: attempt 3 fails"):
            client.speaker("alice")
    assert fake.attempts["GetSpeaker"] == 3


def test_retries_zero_disables_them(fake):
    fake.failures["Blend"] = (grpc.StatusCode.UNAVAILABLE, 1)
    with Client(fake.target, timeout=10, retries=0) as client:
        with pytest.raises(Unavailable, match="Blend: attempt 1 fails"):
            client.blend("alice", FRAMES)
    assert fake.attempts["Blend"] == 1


def test_other_codes_are_not_retried(fake):
    fake.failures["Blend"] = (grpc.StatusCode.RESOURCE_EXHAUSTED, 1)
    with Client(fake.target, timeout=10) as client:
        with pytest.raises(ResourceExhausted):
            client.blend("alice", FRAMES)
    assert fake.attempts["Blend"] == 1


def test_builder_retries_only_read_only_methods(fake):
    for method in ("GetJob", "ListJobs", "CancelJob", "BuildIndex"):
        fake.failures[method] = (grpc.StatusCode.UNAVAILABLE, 1)
    with Client(fake.target, timeout=10) as client:
        assert client.job("job-7").id == "job-7"
        client.jobs()
        with pytest.raises(Unavailable):
            client.cancel("job-7")
        with pytest.raises(Unavailable):
            client.build("alice", features="fs-1")
    assert (fake.attempts["GetJob"], fake.attempts["ListJobs"]) == (2, 2)
    assert (fake.attempts["CancelJob"], fake.attempts["BuildIndex"]) == (1, 1)


def test_a_name_that_cannot_be_a_header_reaches_the_server_without_one(fake):
    with Client(fake.target, timeout=10) as client:
        client.speaker("al\nice")
    assert fake.headers("GetSpeaker") == [None]
