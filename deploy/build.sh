#!/usr/bin/env bash
# Installs the dependencies (deploy/install-deps.sh) and builds timbre into ./build.
#   deploy/build.sh [install-deps.sh arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh "$@"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"
