#!/usr/bin/env bash
# Fuzzes each target for a while, one at a time, niced: tests/fuzz/run.sh [SECONDS] [TARGET...]
# (default 600 seconds or 1,000,000 executions, whichever comes first, for every target;
# TIMBRE_FUZZ_RUNS sets the executions). Needs the build of deploy/run-sanitizers.sh asan
# (build-asan/, clang with TIMBRE_FUZZ=ON). New inputs go to build-asan/fuzz-corpus/<target>
# (the committed seeds in tests/fuzz/corpus are read, never written); a crash is saved as
# build-asan/fuzz-findings/<target>/crash-*. Prints one line per target: executions, seconds,
# findings.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_EACH="${1:-600}"
shift || true
TARGETS=("$@")
if [ "${#TARGETS[@]}" -eq 0 ]; then
  TARGETS=(npy frame_codec upload token_file json_record name repository faiss_index)
fi
status=0
for target in "${TARGETS[@]}"; do
  fuzzer="build-asan/tests/fuzz/${target}_fuzzer"
  [ -x "$fuzzer" ] || { echo "run.sh: $fuzzer is not built (deploy/run-sanitizers.sh asan)" >&2; exit 2; }
  work="build-asan/fuzz-corpus/$target"
  findings="build-asan/fuzz-findings/$target"
  mkdir -p "$work" "$findings"
  log="build-asan/fuzz-findings/$target.log"
  start=$(date +%s)
  set +e
  nice -n 10 "$fuzzer" "$work" "tests/fuzz/corpus/$target" -max_total_time="$SECONDS_EACH" \
    -runs="${TIMBRE_FUZZ_RUNS:-1000000}" -timeout=30 -rss_limit_mb=4096 -artifact_prefix="$findings/" -print_final_stats=1 \
    >"$log" 2>&1
  rc=$?
  set -e
  took=$(( $(date +%s) - start ))
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  found=$(find "$findings" -type f | wc -l)
  echo "$target: $runs executions in ${took}s, $found findings (exit $rc; log $log)"
  [ "$rc" -eq 0 ] && [ "$found" -eq 0 ] || status=1
done
exit "$status"
