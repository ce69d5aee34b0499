#!/usr/bin/env bash
# Lints the Dockerfile with dockerfilelint (from the npm registry, cached in build/lint). The
# image itself needs a Docker engine to build; this keeps the file correct without one.
set -euo pipefail
cd "$(dirname "$0")/.."
LINT_DIR=build/lint
if [ ! -x "$LINT_DIR/node_modules/.bin/dockerfilelint" ]; then
  mkdir -p "$LINT_DIR"
  npm install --silent --no-audit --no-fund --prefix "$LINT_DIR" dockerfilelint@1.8.0 >/dev/null
fi
"$LINT_DIR/node_modules/.bin/dockerfilelint" Dockerfile
