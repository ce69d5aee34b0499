# A timbre cluster on one machine, for the cluster test (run.sh) and benchmark (bench.sh):
# 3 serving replicas (--role=serving --lazy_load) and 1 builder (--role=builder), sharing one
# repository directory, each in its own network namespace joined by a veth pair to the
# namespace of the balancer and the clients (as separate hosts would be). Where namespaces
# cannot be made (no root, no CAP_NET_ADMIN), everything runs on loopback addresses on free
# ports instead; CLUSTER_MODE says which ran.
#
# Source it, set SERVER_BIN and CLIENT_BIN, call cluster_setup, then start what you need.
# cluster_cleanup (installed as an EXIT trap by cluster_setup) stops every process, deletes the
# namespaces and removes the temporary directory, also when the caller fails.

# Debian's python3 (with python3-numpy), not whatever python3 comes first on PATH.
PYTHON=${PYTHON:-/usr/bin/python3}
CLUSTER_NAME="timbre$$"
CLUSTER_PIDS=()
CLUSTER_NAMESPACES=()
REPLICAS=(serving1 serving2 serving3 builder)

log() { printf '[cluster %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

cluster_cleanup() {
  local status=$?
  set +e
  for pid in "${CLUSTER_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
  # `ip netns exec` may run its command as a child: kill whatever still runs in a namespace.
  for ns in "${CLUSTER_NAMESPACES[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  done
  for pid in "${CLUSTER_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  for ns in "${CLUSTER_NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null; done
  [ -n "${WORK:-}" ] && rm -rf "$WORK"
  exit "$status"
}

# The command prefix that runs a program in the balancer's place, or replica $1's, as an array
# in PREFIX. Background processes are started as "${PREFIX[@]}" program &, so that $! is the
# program itself (ip netns exec execs it), which cleanup and the faults can signal.
prefix_for() {
  if [ "$CLUSTER_MODE" = netns ]; then PREFIX=(ip netns exec "${CLUSTER_NAME}-$1"); else PREFIX=(); fi
}

# Runs a command where the balancer and the clients live.
in_lb() { if [ "$CLUSTER_MODE" = netns ]; then ip netns exec "${CLUSTER_NAME}-lb" "$@"; else "$@"; fi; }
free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Makes the namespaces and links: lb <-> each replica over 10.213.<i>.0/30.
make_namespaces() {
  ip netns add "${CLUSTER_NAME}-lb" 2>/dev/null || return 1
  CLUSTER_NAMESPACES+=("${CLUSTER_NAME}-lb")
  ip -n "${CLUSTER_NAME}-lb" link set lo up || return 1
  local i=1
  for name in "${REPLICAS[@]}"; do
    local ns="${CLUSTER_NAME}-$name"
    ip netns add "$ns" || return 1
    CLUSTER_NAMESPACES+=("$ns")
    ip -n "$ns" link set lo up || return 1
    ip link add "tl$$x$i" netns "${CLUSTER_NAME}-lb" type veth peer name eth0 netns "$ns" || return 1
    ip -n "${CLUSTER_NAME}-lb" addr add "10.213.$i.1/30" dev "tl$$x$i" || return 1
    ip -n "${CLUSTER_NAME}-lb" link set "tl$$x$i" up || return 1
    ip -n "$ns" addr add "10.213.$i.2/30" dev eth0 || return 1
    ip -n "$ns" link set eth0 up || return 1
    LINK[$name]="tl$$x$i"
    HOST[$name]="10.213.$i.2"
    PORT[$name]=50051
    METRICS[$name]=9464
    i=$((i + 1))
  done
  LB_HOST=127.0.0.1
  HAPROXY_PORT=50051
  NGINX_PORT=50052
  HAPROXY_STATS_PORT=8404
}

use_loopback() {
  for name in "${REPLICAS[@]}"; do
    HOST[$name]=127.0.0.1
    PORT[$name]=$(free_port)
    METRICS[$name]=$(free_port)
  done
  LB_HOST=127.0.0.1
  HAPROXY_PORT=$(free_port)
  NGINX_PORT=$(free_port)
  HAPROXY_STATS_PORT=$(free_port)
}

cluster_setup() {
  declare -gA HOST PORT METRICS LINK PIDOF
  WORK=$(mktemp -d /tmp/timbre-cluster.XXXXXX)
  trap cluster_cleanup EXIT
  trap 'exit 130' INT TERM
  mkdir -p "$WORK/repo" "$WORK/logs"
  if [ "${TIMBRE_CLUSTER_LOOPBACK:-0}" != 1 ] && make_namespaces; then
    CLUSTER_MODE=netns
  else
    for ns in "${CLUSTER_NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null; done
    CLUSTER_NAMESPACES=()
    CLUSTER_MODE=loopback
    use_loopback
  fi
  log "mode: $CLUSTER_MODE (replicas at $(for n in "${REPLICAS[@]}"; do printf '%s ' "${HOST[$n]}:${PORT[$n]}"; done))"
}

addr() { echo "${HOST[$1]}:${PORT[$1]}"; }

# Starts replica $1 (a name of REPLICAS) in the background.
start_replica() {
  local name=$1 role=serving
  [ "$name" = builder ] && role=builder
  prefix_for "$name"
  "${PREFIX[@]}" "$SERVER_BIN" --repo="$WORK/repo" --role="$role" --lazy_load \
    --host="${HOST[$name]}" --port="${PORT[$name]}" --metrics_host="${HOST[$name]}" \
    --metrics_port="${METRICS[$name]}" --per_speaker_metrics --search_threads=1 \
    --poll_interval=500ms --drain_grace=1500ms --shutdown_grace=2s --log_level=warning \
    >>"$WORK/logs/$name.log" 2>&1 &
  PIDOF[$name]=$!
  CLUSTER_PIDS+=("$!")
}

# Waits until replica $1 answers about speaker $2 (its first scan is done), for at most 20 s.
wait_replica() {
  local name=$1 speaker=${2:-}
  for _ in $(seq 200); do
    if [ "$name" = builder ]; then
      in_lb "$CLIENT_BIN" jobs --server="$(addr builder)" --timeout=1s >/dev/null 2>&1 && return 0
    elif in_lb "$CLIENT_BIN" speaker --speaker="$speaker" --server="$(addr "$name")" --timeout=1s \
         --retries=0 >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  die "replica $name did not start; its log: $(tail -5 "$WORK/logs/$name.log")"
}

start_haproxy() {
  prefix_for lb
  TIMBRE_LB_BIND="$LB_HOST:$HAPROXY_PORT" TIMBRE_LB_STATS="$LB_HOST:$HAPROXY_STATS_PORT" \
  TIMBRE_SERVING_1="$(addr serving1)" TIMBRE_SERVING_2="$(addr serving2)" \
  TIMBRE_SERVING_3="$(addr serving3)" TIMBRE_BUILDER="$(addr builder)" \
    "${PREFIX[@]}" haproxy -f "$DEPLOY/lb/haproxy.cfg" >>"$WORK/logs/haproxy.log" 2>&1 &
  CLUSTER_PIDS+=("$!")
}

start_nginx() {
  mkdir -p "$WORK/nginx"
  sed -e "s#@TIMBRE_NGINX_DIR@#$WORK/nginx#g" -e "s#@TIMBRE_LB_BIND@#$LB_HOST:$NGINX_PORT#" \
      -e "s#@TIMBRE_SERVING_1@#$(addr serving1)#" -e "s#@TIMBRE_SERVING_2@#$(addr serving2)#" \
      -e "s#@TIMBRE_SERVING_3@#$(addr serving3)#" -e "s#@TIMBRE_BUILDER@#$(addr builder)#" \
      "$DEPLOY/lb/nginx.conf" >"$WORK/nginx/nginx.conf"
  prefix_for lb
  "${PREFIX[@]}" nginx -e stderr -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' \
    >>"$WORK/logs/nginx.log" 2>&1 &
  CLUSTER_PIDS+=("$!")
}

# Waits until a balancer on port $1 answers a call about speaker $2.
wait_balancer() {
  for _ in $(seq 100); do
    in_lb "$CLIENT_BIN" speaker --speaker="$2" --server="$LB_HOST:$1" --timeout=1s --retries=0 \
      >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  die "the balancer on port $1 does not answer"
}

# Writes $WORK/features.npy (rows x dim, clustered) and $WORK/queries.npy (held-out frames).
make_frames() {
  "$PYTHON" - "$WORK" "$1" "$2" <<'EOF'
import sys
import numpy as np
work, rows, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(7)
centres = rng.normal(size=(32, dim)).astype(np.float32)
def frames(n):
    return (centres[rng.integers(0, 32, n)] + 0.3 * rng.normal(size=(n, dim))).astype(np.float32)
np.save(f"{work}/features.npy", frames(rows))
np.save(f"{work}/queries.npy", frames(512))
EOF
}

# Uploads the features to the builder and builds speaker $2 from them with recipe $1; prints
# the feature set id.
build_speaker() {
  local recipe=$1 speaker=$2
  local id
  id=$(in_lb "$CLIENT_BIN" upload --input="$WORK/features.npy" --server="$(addr builder)" 2>/dev/null |
       sed -n 's/^feature set \([^ :]*\).*/\1/p' | head -1)
  [ -n "$id" ] || die "upload to the builder failed"
  in_lb "$CLIENT_BIN" build --speaker="$speaker" --features="$id" --recipe="$recipe" \
    --server="$(addr builder)" --wait_serving=false >>"$WORK/logs/builds.log" 2>&1 ||
    die "building $speaker failed: $(tail -3 "$WORK/logs/builds.log")"
  echo "$id"
}

# Publishes version 1 of speaker $1 as version 1 of speakers $2..., as an operator would by
# hand: copied into a hidden directory, then renamed to its number.
copy_speaker() {
  local from=$1; shift
  for speaker in "$@"; do
    mkdir -p "$WORK/repo/$speaker"
    cp -r "$WORK/repo/$from/1" "$WORK/repo/$speaker/.staging-copy"
    mv "$WORK/repo/$speaker/.staging-copy" "$WORK/repo/$speaker/1"
  done
}

# Prints replica $1's /metrics.
scrape() { in_lb "$PYTHON" -c "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://${HOST[$1]}:${METRICS[$1]}/metrics', timeout=5).read().decode())"; }
