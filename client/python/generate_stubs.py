"""Generates timbre_client's gRPC stubs from the protos with Debian's protoc and grpc_python_plugin.

The stubs land in OUT/timbre_client/_proto/ (timbre/v1/*_pb2.py, *_pb2_grpc.py and
grpc/health/v1/...), their imports rewritten to live inside the timbre_client package, so the
package adds no top-level `timbre` or `grpc.health` module. The directory is written beside its
final place and renamed over it, so a failed run leaves the previous stubs as they were.

Used by the CMake build (client/python/CMakeLists.txt) and by setup.py.
    python3 generate_stubs.py [--protoc PROTOC] [--plugin GRPC_PYTHON_PLUGIN] PROTO_ROOT OUT
"""
import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

# The API's protos, relative to the proto root.
PROTOS = (
    "timbre/v1/timbre.proto",
    "timbre/v1/version_metadata.proto",
    "timbre/v1/build_job.proto",
    "timbre/v1/index_builder.proto",
    "timbre/v1/feature_set_manifest.proto",
    "grpc/health/v1/health.proto",
)
PACKAGE = "timbre_client._proto"
_IMPORT = re.compile(r"^(from|import) ((?:timbre|grpc\.health)\.v1)\b", re.MULTILINE)


def generate(proto_root, out, protoc="protoc", plugin="grpc_python_plugin"):
    """Writes the stubs of PROTOS under `proto_root` to `out`/timbre_client/_proto.

    Raises FileNotFoundError for a missing proto or tool, RuntimeError when protoc fails.
    """
    proto_root = pathlib.Path(proto_root)
    for proto in PROTOS:
        if not (proto_root / proto).is_file():
            raise FileNotFoundError(f"no proto '{proto}' under '{proto_root}'")
    for tool in (protoc, plugin):
        if shutil.which(tool) is None:
            raise FileNotFoundError(f"'{tool}' not found: install Debian's protobuf-compiler-grpc")
    target = pathlib.Path(out) / "timbre_client" / "_proto"
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix="._proto-", dir=target.parent))
    try:
        command = [shutil.which(protoc), f"-I{proto_root}", f"--python_out={staging}",
                   f"--grpc_python_out={staging}",
                   f"--plugin=protoc-gen-grpc_python={shutil.which(plugin)}"]
        result = subprocess.run(command + list(PROTOS), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"protoc failed: {result.stderr.strip()}")
        for directory, _, files in os.walk(staging):
            (pathlib.Path(directory) / "__init__.py").touch()
            for name in files:
                if name.endswith(".py"):
                    path = pathlib.Path(directory) / name
                    path.write_text(_IMPORT.sub(rf"\1 {PACKAGE}.\2", path.read_text()))
        staging.chmod(0o755)
        old = None
        if target.exists():
            old = target.with_name(f"._proto-old-{os.getpid()}")
            target.rename(old)
        staging.rename(target)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protoc", default="protoc")
    parser.add_argument("--plugin", default="grpc_python_plugin")
    parser.add_argument("proto_root")
    parser.add_argument("out")
    args = parser.parse_args(argv)
    try:
        generate(args.proto_root, args.out, args.protoc, args.plugin)
    except (OSError, RuntimeError) as error:
        print(f"generate_stubs: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
