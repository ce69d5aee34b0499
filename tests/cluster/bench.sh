#!/usr/bin/env bash
# The cost of the balancer, measured in one run: `timbre bench` (unary Blend, 16 frames per call,
# 8 callers back to back) for one speaker and for 30 speakers, direct to one serving replica,
# through HAProxy and through nginx; then the time from `timbre build` finishing to every replica
# that holds the speaker serving the new version. The cluster is tests/cluster/cluster_lib.sh's
# (network namespaces when possible). Prints a Markdown table for the README.
#
#   flock /tmp/timbre-bench.lock tests/cluster/bench.sh build/server/timbre-server build/client/timbre [SECONDS]
set -euo pipefail
SERVER_BIN=$(realpath "$1")
CLIENT_BIN=$(realpath "$2")
SECONDS_EACH=${3:-8}
HERE=$(cd "$(dirname "$0")" && pwd)
DEPLOY=$(cd "$HERE/../../deploy" && pwd)
source "$HERE/cluster_lib.sh"
cluster_setup

SPEAKERS=()
for i in $(seq -w 0 29); do SPEAKERS+=("spk$i"); done
ALL=$(IFS=,; echo "${SPEAKERS[*]}")
make_frames 20000 256
start_replica builder
wait_replica builder
FEATURES=$(build_speaker "IVF128,Flat" spk00)
copy_speaker spk00 "${SPEAKERS[@]:1}"
for name in serving1 serving2 serving3; do start_replica "$name"; done
for name in serving1 serving2 serving3; do wait_replica "$name" spk00; done
start_haproxy
start_nginx
wait_balancer "$HAPROXY_PORT" spk00
wait_balancer "$NGINX_PORT" spk00

# One bench: $1 label, $2 target, $3 speakers; prints a table row.
run() {
  local json
  json=$(in_lb "$CLIENT_BIN" bench --server="$2" --speaker="$3" --concurrency=8 --frames=16 \
         --duration="${SECONDS_EACH}s" --warmup=2s --queries="$WORK/queries.npy" --json 2>/dev/null) || true
  "$PYTHON" - "$1" "$json" <<'PY'
import json, sys
r = json.loads(sys.argv[2])
print(f"| {sys.argv[1]} | {r['calls_per_second']:.0f} | {r['frames_per_second']:.0f} | "
      f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['errors']} |")
PY
}

echo "Measured $(date -u +%Y-%m-%d) on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(uname -r); cluster mode $CLUSTER_MODE; index IVF128,Flat of 20,000 x 256 per speaker."
echo
echo "| what | calls/s | frames/s | p50 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|"
for speakers in spk00 "$ALL"; do
  n=$([ "$speakers" = spk00 ] && echo 1 || echo 30)
  run "direct to one replica, $n speaker(s)" "$(addr serving1)" "$speakers"
  run "through HAProxy, $n speaker(s)" "$LB_HOST:$HAPROXY_PORT" "$speakers"
  run "through nginx, $n speaker(s)" "$LB_HOST:$NGINX_PORT" "$speakers"
done
echo
for round in 1 2 3; do
  in_lb "$CLIENT_BIN" build --server="$LB_HOST:$HAPROXY_PORT" --speaker=spk07 --features="$FEATURES" \
    --recipe="IVF128,Flat" --wait_replicas="$(addr serving1),$(addr serving2),$(addr serving3)" \
    2>/dev/null | grep -o 'version [0-9]* of .* after the build finished' | sed "s/^/build $round: /"
done
