#!/usr/bin/env bash
# Installs, builds and runs the whole test suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/build.sh
cd build
ctest --output-on-failure -j "$(nproc)"
