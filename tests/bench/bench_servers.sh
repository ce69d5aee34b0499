# Sourced by the benchmark scripts: starts a timbre-server on a free loopback port and measures it
# with this tree's load generator (`timbre bench`, 16 frames per call, k 8).
#   start_server BINARY REPO      stop_server
#   bench SPEAKER QUERIES.npy SECONDS [timbre bench flags]   prints the JSON report
#   realtime_clients NAME SPEAKER QUERIES.npy SECONDS OUT    the most callers at 4 calls/s each
#       (stream) served with p99 <= 5 ms and no errors, found by doubling from 8 then bisection;
#       every run goes to OUT as "NAME|realtime N|JSON"; prints the count.
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SERVER=
stop_server() { if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true; SERVER=; fi; }
trap stop_server EXIT
start_server() {
  "$1" --repo="$2" --host=127.0.0.1 --port="$PORT" --metrics_port=-1 --poll_interval=0 \
    > "$2/../server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 300); do
    build/client/timbre speakers --server="127.0.0.1:$PORT" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "bench: the server did not start" >&2
  exit 1
}
bench() {
  local speaker="$1" queries="$2" seconds="$3" json
  shift 3
  json=$(build/client/timbre bench --server="127.0.0.1:$PORT" --speaker="$speaker" --frames=16 \
    --queries="$queries" --duration="${seconds}s" --warmup=2s --json "$@") || true
  [[ "$json" == "{"* ]] || { echo "bench: no report for $speaker $*" >&2; exit 1; }
  echo "$json"
}
realtime_clients() {
  local name="$1" speaker="$2" queries="$3" seconds="$4" out="$5"
  realtime_ok() {
    local json
    json=$(bench "$speaker" "$queries" "$seconds" --concurrency="$1" --rate=4 --mode=stream)
    echo "$name|realtime $1|$json" >> "$out"
    /usr/bin/python3 -c 'import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if r["p99_ms"] <= 5.0 and r["errors"] == 0 else 1)' "$json"
  }
  local good=0 bad=0 n=8
  while [ "$bad" -eq 0 ] && [ "$n" -le 1024 ]; do
    if realtime_ok "$n"; then good=$n; n=$((n * 2)); else bad=$n; fi
  done
  [ "$bad" -eq 0 ] && bad=$((good * 2))
  while [ $((bad - good)) -gt $((good / 8 > 1 ? good / 8 : 1)) ]; do
    n=$(((good + bad) / 2))
    if realtime_ok "$n"; then good=$n; else bad=$n; fi
  done
  echo "$good"
}
