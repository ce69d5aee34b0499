"""The package installs with pip (no build isolation: the machine has no package index), its
stubs generated at build time from the protos, into a virtual environment that sees Debian's
python3-grpcio, python3-protobuf and python3-numpy."""
import os
import pathlib
import shutil
import subprocess
import sys

SOURCE = pathlib.Path(os.environ.get("TIMBRE_CLIENT_SOURCE", pathlib.Path(__file__).parents[1]))
PROTO = pathlib.Path(os.environ.get("TIMBRE_PROTO_DIR", SOURCE.parents[1] / "proto"))


def stub_generator():
    """client/python/generate_stubs.py as a module."""
    sys.path.insert(0, str(SOURCE))
    try:
        import generate_stubs
    finally:
        sys.path.remove(str(SOURCE))
    return generate_stubs


def test_pip_install_builds_the_stubs_and_imports(tmp_path):
    # A copy, so the build leaves nothing in the source tree.
    source = tmp_path / "src"
    shutil.copytree(SOURCE, source, ignore=shutil.ignore_patterns("tests", "__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True)
    python = venv / "bin" / "python"
    environment = dict(os.environ, TIMBRE_PROTO_DIR=str(PROTO), PIP_NO_INDEX="1")
    environment.pop("PYTHONPATH", None)
    result = subprocess.run([python, "-m", "pip", "install", "-q", "--no-build-isolation",
                             str(source)], env=environment, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    probe = ("import timbre_client, timbre_client.rvc;"
             "from timbre_client._proto.timbre.v1 import timbre_pb2_grpc;"
             "print(timbre_client.__file__, timbre_client.__version__)")
    result = subprocess.run([python, "-P", "-c", probe], env=environment, capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    location, version = result.stdout.split()
    assert location.startswith(str(venv)) and version == "0.1.0"
    result = subprocess.run([python, "-m", "pip", "show", "timbre-client"], env=environment,
                            capture_output=True, text=True)
    assert "Name: timbre-client" in result.stdout


def test_stub_generation_refuses_a_missing_proto_and_keeps_old_stubs(tmp_path):
    generate_stubs = stub_generator()
    generate_stubs.generate(PROTO, tmp_path)
    stub = tmp_path / "timbre_client" / "_proto" / "timbre" / "v1" / "timbre_pb2.py"
    before = stub.read_text()
    assert "from timbre_client._proto.timbre.v1 import version_metadata_pb2" in before
    empty = tmp_path / "no-protos"
    empty.mkdir()
    try:
        generate_stubs.generate(empty, tmp_path)
    except FileNotFoundError as error:
        assert "no proto 'timbre/v1/timbre.proto'" in str(error)
    else:
        raise AssertionError("a missing proto was not refused")
    assert stub.read_text() == before
    assert sorted(p.name for p in (tmp_path / "timbre_client").iterdir()) == ["_proto"]


def test_stub_generation_refuses_a_missing_tool_and_a_broken_proto(tmp_path):
    generate_stubs = stub_generator()
    try:
        generate_stubs.generate(PROTO, tmp_path, plugin="no-such-grpc-plugin")
    except FileNotFoundError as error:
        assert "'no-such-grpc-plugin' not found" in str(error)
    else:
        raise AssertionError("a missing plugin was not refused")
    broken = tmp_path / "proto"
    shutil.copytree(PROTO, broken)
    (broken / "timbre" / "v1" / "timbre.proto").write_text("syntax = \"proto3\";\nmessage {")
    try:
        generate_stubs.generate(broken, tmp_path / "out")
    except RuntimeError as error:
        assert "protoc failed" in str(error) and "timbre.proto" in str(error)
    else:
        raise AssertionError("a broken proto was not refused")
    assert not (tmp_path / "out" / "timbre_client" / "_proto").exists()
    assert [p.name for p in (tmp_path / "out" / "timbre_client").iterdir()] == []
