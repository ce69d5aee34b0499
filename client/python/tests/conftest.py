"""Fixtures of the timbre_client tests: a real timbre-server on a free loopback port.

The ctest entries set TIMBRE_SERVER (the timbre-server binary), TIMBRE_TEST_DATA (tests/data) and
PYTHONPATH (the built package). Servers serve a copy of the RVC fixture index as speaker 'rvc'
(256-d, 1,000 vectors, IVF25,Flat) and are stopped (SIGKILL if need be) at teardown.
"""
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from timbre_client import Client

DATA = pathlib.Path(os.environ.get("TIMBRE_TEST_DATA", pathlib.Path(__file__).parents[3] / "tests" / "data"))
SERVER = os.environ.get("TIMBRE_SERVER", "timbre-server")
FIXTURE_INDEX = DATA / "added_IVF25_Flat_nprobe_1_fixture_v1.index"
DIM = 256


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition, seconds: float, what: str):
    """Polls `condition` until it is true or `seconds` pass (then fails naming `what`)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out after {seconds} s waiting for {what}")


class ServerProcess:
    """timbre-server serving `repo` on 127.0.0.1:`port`, logging to `log`."""

    def __init__(self, repo: pathlib.Path, log: pathlib.Path, *flags: str, port: int = 0):
        self.repo, self.log = repo, log
        self.port = port or free_port()
        self.target = f"127.0.0.1:{self.port}"
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [SERVER, f"--repo={repo}", "--host=127.0.0.1", f"--port={self.port}",
                 "--metrics_port=-1", "--poll_interval=0", *flags],
                stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: f"timbre serving on {self.target}" in self.log_text()
                 or self.process.poll() is not None, 60, "the server to serve")
        if self.process.poll() is not None:
            pytest.fail(f"the server exited before serving:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM, seconds: float = 30) -> int:
        """Sends `sig` and waits for the exit; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(seconds)
        finally:
            self.kill()

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def make_repo(root: pathlib.Path) -> pathlib.Path:
    """A repository whose speaker 'rvc' is the RVC fixture index."""
    (root / "rvc").mkdir(parents=True)
    shutil.copy(FIXTURE_INDEX, root / "rvc")
    return root


@pytest.fixture
def start_server(tmp_path):
    """start_server(*flags, repo=None, port=0) -> ServerProcess; every one is stopped after."""
    started = []

    def start(*flags, repo=None, port=0):
        number = len(started)
        server = ServerProcess(repo or make_repo(tmp_path / f"repo{number}"),
                               tmp_path / f"server{number}.log", *flags, port=port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One plain-text server for a test module."""
    root = tmp_path_factory.mktemp("server")
    process = ServerProcess(make_repo(root / "repo"), root / "server.log")
    yield process
    process.kill()


@pytest.fixture(scope="module")
def client(server):
    """A client of `server`, shared by a test module (closing one takes up to 0.2 s)."""
    with Client(server.target, timeout=20) as connected:
        yield connected


@pytest.fixture(scope="session")
def queries() -> np.ndarray:
    """24 float32 [256] frames near the fixture's stored frames."""
    return np.load(DATA / "rvc_fixture_queries.npy")


@pytest.fixture(scope="session")
def expected() -> np.ndarray:
    """RVC's own numpy blend of `queries` at index_rate 0.75 (written with RVC's code)."""
    return np.load(DATA / "rvc_fixture_expected.npy")
