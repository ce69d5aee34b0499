"""Builds timbre-client: generates the gRPC stubs from ../../proto (or $TIMBRE_PROTO_DIR) with
Debian's protoc and grpc_python_plugin while building, so they are never stale.

    python3 -m pip install --no-build-isolation ./client/python
"""
import os
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import generate_stubs  # noqa: E402  (beside this file)


class BuildPyWithStubs(build_py):
    """build_py, then the stubs into the built package."""

    def run(self):
        super().run()
        proto_root = os.environ.get("TIMBRE_PROTO_DIR", os.path.join(HERE, "..", "..", "proto"))
        generate_stubs.generate(proto_root, self.build_lib)


setup(cmdclass={"build_py": BuildPyWithStubs})
