#!/usr/bin/env bash
# drain_expect.sh SERVER CLI FIXTURE_INDEX: starts timbre-server on a free loopback port serving
# FIXTURE_INDEX as speaker 'rvc', checks that it answers, sends SIGTERM, and passes when the server
# drains, logs it and exits 0.
set -u
server="$1"; cli="$2"; fixture="$3"
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- server log:"; cat "$work/log"; exit 1; }

mkdir -p "$work/repo/rvc"
cp "$fixture" "$work/repo/rvc/"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

"$server" --repo="$work/repo" --host=127.0.0.1 --port="$port" --metrics_port=-1 \
  --poll_interval=0 --drain_grace=300ms >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
  grep -q "timbre serving on" "$work/log" && break
  kill -0 "$pid" 2>/dev/null || fail "the server exited before serving"
  sleep 0.1
done
grep -q "timbre serving on 127.0.0.1:$port" "$work/log" || fail "the server did not start on port $port"
"$cli" speakers --server="127.0.0.1:$port" --timeout=10s | grep -q "^rvc " || fail "speaker 'rvc' is not served"

kill -TERM "$pid"
wait "$pid"; code=$?
pid=""
[ "$code" -eq 0 ] || fail "exit code $code after SIGTERM, expected 0"
for line in "SIGTERM: draining" "draining: health NOT_SERVING" "timbre-server stopped"; do
  grep -qF "$line" "$work/log" || fail "the log lacks '$line'"
done
echo "ok: drained on SIGTERM and exited 0"
