#!/usr/bin/env bash
# The CLI's build path end to end: starts timbre-server on a free loopback port, builds a speaker
# from RVC's feature files with `timbre build --input=DIR` (upload, live progress, report), checks
# the report and the served speaker, and stops the server.
#   cli_build.sh SERVER_BINARY CLI_BINARY FEATURE_DIR
set -euo pipefail
server_bin="$1" cli="$2" features="$3"
work=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/repo"
"$server_bin" --repo="$work/repo" --host=127.0.0.1 --port=0 --metrics_port=-1 > "$work/server.log" 2>&1 &
server=$!
port=
for _ in $(seq 200); do
  port=$(grep -o 'serving on 127.0.0.1:[0-9]*' "$work/server.log" | head -1 | cut -d: -f2 || true)
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "server did not start:"; cat "$work/server.log"; exit 1; }

"$cli" build --server="127.0.0.1:$port" --speaker=fixture --input="$features" --recipe=rvc \
  --seed=1729 > "$work/out.txt" 2> "$work/err.txt" || { cat "$work/out.txt" "$work/err.txt"; exit 1; }
for expected in "uploaded feature set fs-" "succeeded, speaker 'fixture', version 1" "index: IVF61,Flat" \
                "shuffle seed 1729" "training"; do
  grep -qF "$expected" "$work/out.txt" || { echo "missing '$expected' in:"; cat "$work/out.txt"; exit 1; }
done
grep -qF "100%" "$work/err.txt" || { echo "no progress bar reaching 100% in:"; cat "$work/err.txt"; exit 1; }
"$cli" speaker --server="127.0.0.1:$port" --speaker=fixture | grep -qF 'recipe: "rvc"' \
  || { echo "the built speaker does not serve"; exit 1; }
"$cli" jobs --server="127.0.0.1:$port" | grep -q "succeeded"
echo "ok"
