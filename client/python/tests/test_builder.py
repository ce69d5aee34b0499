"""Client's building methods against a real timbre-server: upload with progress, build with
progress and report, job, jobs, cancel, feature sets, and the errors of each."""
import numpy as np
import pytest

from timbre_client import (BuildFailed, BuildJob, Client, FailedPrecondition, InvalidArgument,
                           NotFound, SpeakerInfo, Unavailable)
from conftest import DATA
from fake_server import FakeServer

FEATURES = DATA / "rvc_build"  # RVC's feature files: 10.npy, 2.npy, a.npy; 2,400 x 256


def test_upload_reports_progress_and_the_feature_set(client):
    progress = []
    feature_set = client.upload(FEATURES, progress=lambda sent, total: progress.append((sent, total)),
                                chunk_bytes=256 << 10)
    assert [f.name for f in feature_set.files] == ["10.npy", "2.npy", "a.npy"]
    assert (feature_set.rows, feature_set.dim) == (2400, 256)
    total = feature_set.bytes
    assert len(progress) > 3 and progress[-1] == (total, total)
    assert all(a[0] < b[0] for a, b in zip(progress, progress[1:]))
    assert feature_set.id in [s.id for s in client.feature_sets()]
    one = client.upload(FEATURES / "2.npy")
    assert (one.rows, [f.name for f in one.files]) == (900, ["2.npy"])


def test_build_from_a_directory_follows_the_job_and_serves(client, queries):
    records = []
    report = client.build("built", input=FEATURES, recipe="rvc", seed=1729,
                          progress=records.append)
    assert (report.description, report.shuffle_seed, report.input_rows) == ("IVF61,Flat", 1729, 2400)
    assert report.version == "1"
    assert records[-1].state == BuildJob.STATE_SUCCEEDED
    assert "training" in {record.stage for record in records}
    job = client.job(records[-1].id)
    assert job.state == BuildJob.STATE_SUCCEEDED and job.report.version == "1"
    assert job.id in [j.id for j in client.jobs()]
    info = client.speaker("built")
    assert (info.state, info.description, info.recipe) == (SpeakerInfo.STATE_LOADED, "IVF61,Flat", "rvc")
    assert client.blend("built", queries).shape == queries.shape
    with pytest.raises(FailedPrecondition, match="has already ended"):
        client.cancel(job.id)


def test_a_cancelled_build_raises_build_failed(client):
    feature_set = client.upload(FEATURES)

    def cancel_once(job):
        if job.state in (BuildJob.STATE_QUEUED, BuildJob.STATE_RUNNING) and not cancelled:
            cancelled.append(client.cancel(job.id))
    cancelled = []
    with pytest.raises(BuildFailed, match="cancelled") as raised:
        client.build("cancelled", features=feature_set.id, recipe="rvc", progress=cancel_once)
    assert raised.value.job.state == BuildJob.STATE_CANCELLED
    assert cancelled and raised.value.job.id == cancelled[0].id
    with pytest.raises(NotFound):
        client.speaker("cancelled")


@pytest.mark.parametrize("call,error,text", [
    (lambda c: c.build("x", features="fs-0000000000000000"), NotFound,
     "feature set 'fs-0000000000000000' not found"),
    (lambda c: c.build("x", input=FEATURES, recipe="IVF1000,Flat"), InvalidArgument,
     "'IVF1000,Flat' has 1000 inverted lists but only 2400 rows"),
    (lambda c: c.build("x", input=FEATURES, recipe="bogus"), InvalidArgument,
     "could not parse index string bogus"),
    (lambda c: c.build("../x", input=FEATURES), InvalidArgument, "../x"),
    (lambda c: c.job("job-nope"), InvalidArgument, "job id 'job-nope' is malformed"),
    (lambda c: c.job("job-000000000000"), NotFound, "job-000000000000"),
    (lambda c: c.cancel("job-nope"), InvalidArgument, "job id 'job-nope' is malformed"),
])
def test_refused_builds(client, call, error, text):
    with pytest.raises(error) as raised:
        call(client)
    assert text in raised.value.message


def test_refused_uploads(client, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or directory '/missing/dir'"):
        client.upload("/missing/dir")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidArgument, match="holds no .npy files"):
        client.upload(tmp_path / "empty")
    np.save(tmp_path / "ints.npy", np.ones((10, 256), np.int32))
    with pytest.raises(InvalidArgument, match="ints.npy"):
        client.upload(tmp_path / "ints.npy")
    with pytest.raises(InvalidArgument, match="chunk_bytes is 0"):
        client.upload(FEATURES, chunk_bytes=0)
    with pytest.raises(InvalidArgument, match="exactly one of input="):
        client.build("x")
    with pytest.raises(InvalidArgument, match="exactly one of input="):
        client.build("x", input=FEATURES, features="fs-1")
    with pytest.raises(InvalidArgument, match="seed is -1"):
        client.build("x", features="fs-1", seed=-1)
    with pytest.raises(InvalidArgument, match="recipe is ''"):
        client.build("x", features="fs-1", recipe="")


def test_a_watch_that_ends_before_the_job_is_unavailable():
    fake = FakeServer()
    try:
        with Client(fake.target, timeout=10) as client:
            seen = []
            with pytest.raises(Unavailable, match="job job-1: the watch ended before the job did"):
                client.wait("job-1", progress=seen.append)
            assert [job.state for job in seen] == [BuildJob.STATE_RUNNING]
    finally:
        fake.stop()
