#!/usr/bin/env python3
"""Checks that timbre's layers point one way.

Every folder of the code is one layer with one CMake library target. A layer may use only the
layers below it (LAYERS: what each one may use directly; what those use, it may use too) and only
the outside libraries it is allowed (faiss in server/faiss alone, gRPC and spdlog at the edge,
prometheus in the metrics). This script reads every `#include` of every source file and every
`target_link_libraries` of every CMakeLists.txt under the code's folders, and fails naming each
file and line that reaches a layer or library its layer may not use.

usage: check_layers.py ROOT      (ROOT: the source tree; exit 0 clean, 1 violations, 2 usage)
"""

import os
import re
import sys

# Layer -> the layers it may use directly. "messages" are the protobuf messages (timbre_proto),
# "stubs" the generated gRPC services (timbre_grpc).
LAYERS = {
    "messages": [],
    "stubs": ["messages"],
    "server/status": [],
    "server/io": [],
    "server/faiss": ["server/io"],
    "server/serving": ["server/faiss", "server/status", "messages"],
    "server/build": ["server/serving"],
    "server/security": ["server/io"],
    "server/metrics": ["server/build", "server/security"],
    "server/rpc": ["server/metrics", "stubs"],
    "server": ["server/rpc"],
    "client": ["server/io", "stubs"],
    "client/cli": ["client"],
}

# Outside libraries: include prefix and CMake targets of each, and the layers that may use it.
LIBRARIES = {
    "faiss": (("faiss/",), ("timbre_faiss_library",), ["server/faiss"]),
    "gRPC": (("grpcpp/", "grpc/"), ("gRPC::",),
             ["stubs", "server/security", "server/metrics", "server/rpc", "server", "client",
              "client/cli"]),
    "prometheus": (("prometheus/",), ("prometheus-cpp::",), ["server/metrics", "server"]),
    "spdlog": (("spdlog/",), ("spdlog::",),
               ["server/security", "server/metrics", "server/rpc", "server"]),
}

# CMake library target of each layer.
TARGETS = {
    "timbre_proto": "messages",
    "timbre_grpc": "stubs",
    "timbre_status": "server/status",
    "timbre_io": "server/io",
    "timbre_faiss": "server/faiss",
    "timbre_serving": "server/serving",
    "timbre_build": "server/build",
    "timbre_security": "server/security",
    "timbre_metrics": "server/metrics",
    "timbre_rpc": "server/rpc",
    "timbre_server": "server",
    "timbre_client": "client",
    "timbre_cli": "client/cli",
}

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')
LINK = re.compile(r"target_link_libraries\s*\(\s*(\S+)([^)]*)\)", re.S)


def allowed_layers(layer):
    """The layers `layer` may use: itself and every layer below it."""
    seen, todo = {layer}, [layer]
    while todo:
        for below in LAYERS[todo.pop()]:
            if below not in seen:
                seen.add(below)
                todo.append(below)
    return seen


def library_of_include(path):
    for name, (prefixes, _, _) in LIBRARIES.items():
        if path.startswith(prefixes):
            return name
    return None


def layer_of_include(path):
    """The layer an include names, or None for a header outside timbre."""
    if re.match(r"(timbre/v1|grpc/health/v1)/\w+\.grpc\.pb\.h$", path):
        return "stubs"
    if re.match(r"(timbre/v1|grpc/health/v1)/\w+\.pb\.h$", path):
        return "messages"
    if path.startswith("timbre/"):
        return "client"
    folder = os.path.dirname(path)
    if folder in LAYERS:
        return folder
    return None


def layer_of_file(relpath):
    """The layer a source file belongs to (its folder), or None outside the layers."""
    folder = os.path.dirname(relpath)
    if folder == "proto" or folder.startswith("proto/"):
        return "messages"
    if folder == "client" or folder.startswith("client/include/"):
        return "client"  # the client library: sources, and public headers in include/timbre
    return folder if folder in LAYERS else None


def check_source(root, relpath, layer, problems):
    allowed = allowed_layers(layer)
    with open(os.path.join(root, relpath), encoding="utf-8") as source:
        for number, line in enumerate(source, 1):
            match = INCLUDE.match(line)
            if not match:
                continue
            path = match.group(1)
            target = layer_of_include(path)
            if target is not None and target not in allowed:
                problems.append(f"{relpath}:{number}: {layer} may not include {path} "
                                f"(layer {target}; {layer} may use {sorted(allowed)})")
                continue
            library = library_of_include(path) if target is None else None
            if library is not None and layer not in LIBRARIES[library][2]:
                problems.append(f"{relpath}:{number}: {layer} may not include {path} "
                                f"({library} is for {LIBRARIES[library][2]} only)")


def check_cmake(root, relpath, problems):
    """Each layer's library target links only the layers and libraries its layer may use."""
    with open(os.path.join(root, relpath), encoding="utf-8") as cmake:
        text = cmake.read()
    for match in LINK.finditer(text):
        target, items = match.group(1), match.group(2).split()
        layer = TARGETS.get(target)
        if layer is None:
            continue  # executables and tests link what they run
        allowed = allowed_layers(layer)
        number = text.count("\n", 0, match.start()) + 1
        for item in items:
            used = TARGETS.get(item)
            if used is not None and used not in allowed:
                problems.append(f"{relpath}:{number}: {target} ({layer}) may not link {item} "
                                f"(layer {used})")
            for name, (_, prefixes, users) in LIBRARIES.items():
                if item.startswith(prefixes) and layer not in users:
                    problems.append(f"{relpath}:{number}: {target} ({layer}) may not link {item} "
                                    f"({name} is for {users} only)")


def main(argv):
    if len(argv) != 2 or not os.path.isdir(argv[1]):
        print("usage: check_layers.py ROOT", file=sys.stderr)
        return 2
    root = argv[1]
    problems = []
    checked = 0
    for top in ("proto", "server", "client"):
        for folder, _, files in os.walk(os.path.join(root, top)):
            for name in sorted(files):
                relpath = os.path.relpath(os.path.join(folder, name), root)
                if name == "CMakeLists.txt":
                    check_cmake(root, relpath, problems)
                if not name.endswith((".h", ".cc")):
                    continue
                layer = layer_of_file(relpath)
                if layer is None:
                    problems.append(f"{relpath}: its folder is no layer (LAYERS, check_layers.py)")
                    continue
                check_source(root, relpath, layer, problems)
                checked += 1
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"check_layers: {len(problems)} dependencies point the wrong way", file=sys.stderr)
        return 1
    print(f"check_layers: {checked} files, every dependency points down")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
