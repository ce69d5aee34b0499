#!/usr/bin/env bash
# Quick start: installs, builds, and serves ./demo-repo (creating a demo speaker from generated
# frames when it is empty). gRPC on :50051, Prometheus metrics on :9464. Extra arguments go to
# timbre-server, e.g. deploy/run-demo.sh --port=6000.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/build.sh
mkdir -p demo-repo
exec build/server/timbre-server --repo=demo-repo --demo_if_empty "$@"
