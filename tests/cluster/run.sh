#!/usr/bin/env bash
# The cluster test: 3 serving replicas and 1 builder behind the real HAProxy (and nginx), 30
# small speakers, load from `timbre bench` through the balancer, and faults. Prints its numbers
# and fails on: a speaker served by two replicas, a failed call or lost stream block under kill -9,
# rolling restart, network cut or a build, a new version that does not reach every replica.
#
#   tests/cluster/run.sh TIMBRE_SERVER TIMBRE_CLI
#
# Needs haproxy and nginx (deploy/install-deps.sh). Runs in network namespaces as root, else on
# loopback (TIMBRE_CLUSTER_LOOPBACK=1 forces it; the network cut then is skipped). Bounded: every
# wait has a deadline and the whole run takes about 2 minutes; everything it starts is stopped.
set -euo pipefail
SERVER_BIN=$(realpath "$1")
CLIENT_BIN=$(realpath "$2")
HERE=$(cd "$(dirname "$0")" && pwd)
DEPLOY=$(cd "$HERE/../../deploy" && pwd)
source "$HERE/cluster_lib.sh"

command -v haproxy >/dev/null || die "haproxy is not installed (deploy/install-deps.sh)"
command -v nginx >/dev/null || die "nginx is not installed (deploy/install-deps.sh)"
cluster_setup

SPEAKERS=()
for i in $(seq -w 0 29); do SPEAKERS+=("spk$i"); done
SPEAKER_LIST=$(IFS=,; echo "${SPEAKERS[*]}")
SERVING=(serving1 serving2 serving3)

# --- the cluster ---------------------------------------------------------------------------
make_frames 2000 256
start_replica builder
wait_replica builder
FEATURES=$(build_speaker "IVF16,Flat" spk00)
copy_speaker spk00 "${SPEAKERS[@]:1}"
log "built spk00 (2000 x 256, IVF16,Flat) on the builder, published as ${#SPEAKERS[@]} speakers"
for name in "${SERVING[@]}"; do start_replica "$name"; done
for name in "${SERVING[@]}"; do wait_replica "$name" spk00; done
start_haproxy
start_nginx
wait_balancer "$HAPROXY_PORT" spk00
wait_balancer "$NGINX_PORT" spk00
LB="$LB_HOST:$HAPROXY_PORT"

# Runs `timbre bench` through balancer port $1 for $2 seconds into $WORK/$3.json (stream mode,
# one caller per speaker at 8 blocks/s: 240 blocks/s), in the background; BENCH_PID is its pid.
bench_start() {
  prefix_for lb
  "${PREFIX[@]}" "$CLIENT_BIN" bench --server="$LB_HOST:$1" --speaker="$SPEAKER_LIST" \
    --concurrency=${#SPEAKERS[@]} --rate=8 --mode=stream --duration="$2s" --warmup=0s \
    --queries="$WORK/queries.npy" --json >"$WORK/$3.json" 2>"$WORK/logs/$3.bench.log" &
  BENCH_PID=$!
  CLUSTER_PIDS+=("$BENCH_PID")
}
# Waits for the bench, prints its figures, and fails if a call failed.
bench_check() {
  wait "$BENCH_PID" || true
  "$PYTHON" - "$WORK/$1.json" "$1" <<'EOF' || die "$1: calls failed (see above)"
import json, sys
report = json.load(open(sys.argv[1]))
print(f"  {sys.argv[2]}: {report['calls']} blocks answered, {report['errors']} failed "
      f"{report['errors_by_code']}, p50 {report['p50_ms']:.2f} ms, p99 {report['p99_ms']:.2f} ms, "
      f"max {report['max_ms']:.2f} ms, {report['reopens']} streams reopened, "
      f"{report['calls_after_reopen']} blocks answered on a reopened stream"
      + (f"; first error: {report['first_error']}" if report["first_error"] else ""))
sys.exit(1 if report["errors"] or report["calls"] == 0 else 0)
EOF
}
# Writes each serving replica's /metrics to $WORK/$1.<replica>.txt.
scrape_all() { for name in "${SERVING[@]}"; do scrape "$name" >"$WORK/$1.$name.txt"; done; }
# The speakers replica $1 has loaded, one per line.
loaded_on() {
  in_lb "$CLIENT_BIN" speakers --server="$(addr "$1")" --retries=0 | awk '$2 == "loaded" {print $1}'
}

# Runs a bench through balancer port $1 named $2 and fails if a speaker's frames reached more
# than one replica.
check_affinity() {
  scrape_all before
  bench_start "$1" 4 "$2"
  bench_check "$2"
  scrape_all after
  "$PYTHON" "$HERE/affinity.py" $(for n in "${SERVING[@]}"; do printf '%s=%s:%s ' "$n" \
    "$WORK/before.$n.txt" "$WORK/after.$n.txt"; done) || die "$2: a speaker reached two replicas"
}

# --- 1. affinity through HAProxy -----------------------------------------------------------
log "1. affinity through HAProxy: each speaker's calls reach one replica"
check_affinity "$HAPROXY_PORT" affinity
declare -A HELD
for name in "${SERVING[@]}"; do
  HELD[$name]=$(loaded_on "$name" | sort)
  count=$(printf '%s' "${HELD[$name]}" | grep -c . || true)
  [ "$count" -ge 1 ] && [ "$count" -le 20 ] || die "$name holds $count of 30 speakers"
done

# --- 2. kill -9 of one replica under load --------------------------------------------------
log "2. kill -9 of serving3 under load"
bench_start "$HAPROXY_PORT" 6 kill
sleep 2
kill -9 "${PIDOF[serving3]}"
wait "${PIDOF[serving3]}" 2>/dev/null || true
bench_check kill
for name in serving1 serving2; do
  moved=$(comm -13 <(printf '%s\n' "${HELD[$name]}") <(loaded_on "$name" | sort))
  for speaker in $moved; do
    printf '%s\n' "${HELD[serving3]}" | grep -qx "$speaker" ||
      die "$speaker moved to $name although serving3 did not hold it"
  done
  lost=$(comm -23 <(printf '%s\n' "${HELD[$name]}") <(loaded_on "$name" | sort))
  [ -z "$lost" ] || die "$name lost speakers: $lost"
  log "  $(printf '%s' "$moved" | grep -c . || true) of serving3's speakers moved to $name"
done
start_replica serving3
wait_replica serving3 spk00
sleep 1.5  # two HAProxy checks (inter 500ms, rise 2) bring it back into the ring

# --- 3. rolling restart --------------------------------------------------------------------
log "3. rolling restart: SIGTERM, drain, restart each replica in turn"
bench_start "$HAPROXY_PORT" 24 rolling
sleep 1
for name in "${SERVING[@]}"; do
  kill -TERM "${PIDOF[$name]}"
  for _ in $(seq 100); do kill -0 "${PIDOF[$name]}" 2>/dev/null || break; sleep 0.1; done
  kill -0 "${PIDOF[$name]}" 2>/dev/null && die "$name did not drain within 10 s"
  wait "${PIDOF[$name]}" || die "$name exited with an error after SIGTERM"
  start_replica "$name"
  wait_replica "$name" spk00
  sleep 1.5
done
bench_check rolling

# --- 4. network cut ------------------------------------------------------------------------
if [ "$CLUSTER_MODE" = netns ]; then
  log "4. network cut of serving2 (its link down) under load"
  bench_start "$HAPROXY_PORT" 6 cut
  sleep 1.5
  ip -n "${CLUSTER_NAME}-lb" link set "${LINK[serving2]}" down
  sleep 3
  ip -n "${CLUSTER_NAME}-lb" link set "${LINK[serving2]}" up
  bench_check cut
  grep -q "serving2 is DOWN" "$WORK/logs/haproxy.log" ||
    die "HAProxy did not mark serving2 down: $(tail -3 "$WORK/logs/haproxy.log")"
  log "  HAProxy: $(grep -o 'serving2 is DOWN, reason: [^,]*' "$WORK/logs/haproxy.log" | tail -1)"
  sleep 1.5
else
  log "4. network cut: skipped (needs network namespaces; this run is on loopback)"
fi

# --- 5. a build through the balancer while serving -----------------------------------------
log "5. a build of spk07 through HAProxy while serving"
bench_start "$HAPROXY_PORT" 4 idle
bench_check idle
bench_start "$HAPROXY_PORT" 12 build
sleep 1
start=$(date +%s.%N)
in_lb "$CLIENT_BIN" build --server="$LB" --speaker=spk07 --features="$FEATURES" --recipe="IVF32,Flat" \
  --wait_replicas="$(addr serving1),$(addr serving2),$(addr serving3)" --wait_timeout=30s \
  >"$WORK/logs/build-through-lb.log" 2>&1 || die "the build failed: $(tail -5 "$WORK/logs/build-through-lb.log")"
log "  build + wait took $("$PYTHON" -c "print(f'{$(date +%s.%N) - $start:.2f}')") s; $(grep -A3 'serves on every replica' "$WORK/logs/build-through-lb.log" | tr '\n' ' ')"
for name in "${SERVING[@]}"; do
  scrape "$name" | grep '^timbre_speaker_version{speaker="spk07"}' | sed "s/^/  $name: /" || true
done
bench_check build
"$PYTHON" - "$WORK/idle.json" "$WORK/build.json" <<'EOF'
import json, sys
idle, build = (json.load(open(p)) for p in sys.argv[1:])
print(f"  real-time p99: idle {idle['p99_ms']:.2f} ms, during the build {build['p99_ms']:.2f} ms "
      f"({build['p99_ms'] / max(idle['p99_ms'], 1e-9):.2f}x; printed, not asserted: 4 servers, "
      "the balancer and the load share 2 cores here)")
EOF

# --- 6. nginx ------------------------------------------------------------------------------
log "6. affinity and kill -9 through nginx"
check_affinity "$NGINX_PORT" nginx
bench_start "$NGINX_PORT" 6 nginx-kill
sleep 2
kill -9 "${PIDOF[serving1]}"
bench_check nginx-kill

log "PASSED ($CLUSTER_MODE)"
