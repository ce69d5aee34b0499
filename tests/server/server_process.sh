# server_process.sh: sourced by the process-level tests. Runs timbre-server in the background on a
# free loopback port, serving a copy of the RVC fixture as speaker 'rvc', and cleans up on exit.
#   start_server SERVER FIXTURE_INDEX [FLAG...]   sets $pid, $port; logs to $work/log
#   fail MESSAGE                                  prints MESSAGE and the server log, exits 1
#   expect_log TEXT...                            fails unless the log holds each TEXT
#   stop_server SIGNAL                            sends SIGNAL, waits, sets $code
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- server log:"; cat "$work/log" 2>/dev/null; exit 1; }

start_server() {
  local server="$1" fixture="$2"; shift 2
  mkdir -p "$work/repo/rvc"
  cp "$fixture" "$work/repo/rvc/"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # The child truncates the log only after the fork: remove the previous server's log first, or the
  # loop below could find its line.
  rm -f "$work/log"
  "$server" --repo="$work/repo" --host=127.0.0.1 --port="$port" --metrics_port=-1 \
    --poll_interval=0 "$@" >"$work/log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do
    grep -q "timbre serving on 127.0.0.1:$port" "$work/log" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || fail "the server exited before serving"
    sleep 0.1
  done
  grep -q "timbre serving on 127.0.0.1:$port" "$work/log" || fail "the server did not start on port $port"
}

expect_log() {
  local text
  for text in "$@"; do grep -qF -- "$text" "$work/log" || fail "the log lacks '$text'"; done
}

stop_server() {
  kill "-$1" "$pid"
  wait "$pid"; code=$?
  pid=""
}
