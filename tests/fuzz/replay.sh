#!/usr/bin/env bash
# Runs a fuzz target once over every input of its corpus (no fuzzing): tests/fuzz/replay.sh
# FUZZER CORPUS_DIR. Fails if any input crashes, leaks or trips a sanitizer.
set -euo pipefail
fuzzer="$1"
corpus="$2"
shopt -s nullglob
inputs=("$corpus"/*)
if [ "${#inputs[@]}" -eq 0 ]; then
  echo "replay.sh: no inputs in $corpus" >&2
  exit 1
fi
exec "$fuzzer" -runs=0 "${inputs[@]}"
