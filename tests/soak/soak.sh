#!/usr/bin/env bash
# Soak: mixed load on one timbre-server for a long time, with its resources sampled over time.
#
#   tests/soak/soak.sh SERVER CLI [DURATION_SECONDS] [OUT_DIR]   (default 1800 s, ./soak-out)
#   e.g. tests/soak/soak.sh build/server/timbre-server build/client/timbre 1800
#
# The server runs with TLS, user and admin bearer tokens reloaded every 10 s, and a memory budget
# that holds two of its three speakers. The load, all at once for the whole duration:
#   - real-time streams: 8 callers x 4 blocks/s of 16 frames on speaker 'rvc' (BlendStream);
#   - unary calls: 4 callers x 20 calls/s on speaker 'a' (Blend);
#   - every 20 s an admin load of 'b' or 'a' in turn, over the budget: LRU evictions;
#   - every 60 s a new numbered version of 'rvc' published (staging directory, then rename);
#   - every 300 s an upload and build job of speaker 'built' (recipe rvc);
#   - every 120 s a credential rotation: a new user token is added to the token file.
# Every 10 s the server's RSS, threads and open descriptors go to OUT_DIR/resources.csv; the load
# runs in slices of 5 minutes (shorter runs: one slice) whose p50/p99 and errors by code go to
# OUT_DIR/slices.csv. The summary (OUT_DIR/summary.txt, also printed) gives RSS (total, anonymous,
# file-backed) after the first 5 minutes (or the first fifth of a shorter run): its peak, and its
# growth from the median of the next 5 minutes to the median of the last 5; the mappings whose
# RSS grew most over the run (smaps); descriptor and thread ranges, errors by code from the
# server's metrics, and p99 per slice. Loopback only; stops everything it starts.
set -uo pipefail
SERVER="$(realpath "$1")"
CLI="$(realpath "$2")"
DURATION="${3:-1800}"
OUT="$(mkdir -p "${4:-soak-out}" && cd "${4:-soak-out}" && pwd)"
HERE="$(cd "$(dirname "$0")" && pwd)"
FIXTURE="$HERE/../data/added_IVF25_Flat_nprobe_1_fixture_v1.index"
QUERIES="$HERE/../data/rvc_fixture_queries.npy"
PY=/usr/bin/python3

work=$(mktemp -d)
pids=()
server_pid=""
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

certs="$work/certs"
bash "$HERE/../data/make_test_certs.sh" "$certs" >/dev/null 2>&1 || { echo "cannot make certificates"; exit 1; }
(umask 077
 echo "soak-user-token-0000000000000000" >"$work/user.tokens"
 echo "soak-admin-token-000000000000000" >"$work/admin.tokens"
 head -1 "$work/user.tokens" >"$work/client-user.token"
 head -1 "$work/admin.tokens" >"$work/client-admin.token")
repo="$work/repo"
for speaker in rvc a b; do mkdir -p "$repo/$speaker"; cp "$FIXTURE" "$repo/$speaker/"; done
mkdir -p "$work/features"
"$PY" - "$work/features" <<'PYEOF'
import sys
import numpy as np
rng = np.random.default_rng(5)
centres = rng.standard_normal((20, 256)).astype("float32")
rows = centres[rng.integers(0, 20, 4000)] + 0.1 * rng.standard_normal((4000, 256)).astype("float32")
np.save(f"{sys.argv[1]}/0.npy", rows.astype("float32"))
PYEOF

ports=($("$PY" -c 'import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))'))
port=${ports[0]}; metrics_port=${ports[1]}
# One fixture index takes about 1.1 MB: the budget holds two of the three speakers.
"$SERVER" --repo="$repo" --host=127.0.0.1 --port="$port" --metrics_host=127.0.0.1 \
  --metrics_port="$metrics_port" --poll_interval=2s --memory_budget_bytes=2500000 \
  --tls_cert="$certs/server.pem" --tls_key="$certs/server.key" \
  --token_file="$work/user.tokens" --admin_token_file="$work/admin.tokens" \
  --credentials_reload_interval=10s --max_queued_calls=16 >"$OUT/server.log" 2>&1 &
server_pid=$!
tls=(--server="127.0.0.1:$port" --tls_ca="$certs/ca.pem" --timeout=10s)
user=("${tls[@]}" --token_file="$work/client-user.token")
admin=("${tls[@]}" --token_file="$work/client-admin.token")
for _ in $(seq 1 300); do
  grep -q "timbre serving on" "$OUT/server.log" && break
  kill -0 "$server_pid" 2>/dev/null || { echo "the server exited"; cat "$OUT/server.log"; exit 1; }
  sleep 0.1
done

start=$(date +%s)
end=$((start + DURATION))
slice=$(( DURATION < 300 ? DURATION : 300 ))
settle=$(( DURATION >= 1500 ? 300 : DURATION / 5 ))
echo "seconds,rss_kb,rss_anon_kb,rss_file_kb,threads,fds" >"$OUT/resources.csv"
(snapshot=0
 while [ "$(date +%s)" -lt "$end" ]; do
   status="/proc/$server_pid/status"
   rss=$(awk '/^VmRSS/ {print $2}' "$status" 2>/dev/null)
   anon=$(awk '/^RssAnon/ {print $2}' "$status" 2>/dev/null)
   file=$(awk '/^RssFile/ {print $2}' "$status" 2>/dev/null)
   threads=$(awk '/^Threads/ {print $2}' "$status" 2>/dev/null)
   fds=$(ls "/proc/$server_pid/fd" 2>/dev/null | wc -l)
   now=$(( $(date +%s) - start ))
   echo "$now,$rss,$anon,$file,$threads,$fds" >>"$OUT/resources.csv"
   # The memory map at the end of the warm-up and at the end, for the summary's per-mapping growth.
   if [ "$snapshot" -eq 0 ] && [ "$now" -ge "$settle" ]; then
     cp "/proc/$server_pid/smaps" "$OUT/smaps.settled" 2>/dev/null; snapshot=1
   fi
   cp "/proc/$server_pid/smaps" "$OUT/smaps.last" 2>/dev/null
   sleep 10
 done) & pids+=($!)

# The benches, one run per slice: real-time streams and unary calls.
echo "load,slice,calls,errors,p50_ms,p99_ms,errors_by_code" >"$OUT/slices.csv"
bench_loop() {  # name, speaker, then bench flags
  local name="$1" speaker="$2"; shift 2
  local n=0
  while [ $(( $(date +%s) + 5 )) -lt "$end" ]; do
    n=$((n + 1))
    local left=$(( end - $(date +%s) ))
    local this=$(( left < slice ? left : slice ))
    # The bench starts only on a loaded speaker; the evictions may have unloaded it.
    "$CLI" load "${admin[@]}" --speaker="$speaker" >/dev/null 2>>"$OUT/admin-errors.log"
    "$CLI" bench "${user[@]}" --queries="$QUERIES" --warmup=0s --duration="${this}s" --json "$@" \
      --speaker="$speaker" >"$work/$name.$n.json" 2>>"$OUT/bench-errors.log" || sleep 1
    "$PY" - "$name" "$n" "$work/$name.$n.json" >>"$OUT/slices.csv" <<'PYEOF'
import json, sys
name, n, path = sys.argv[1:4]
try:
    text = open(path).read()
    r = json.loads(text[text.index("{"):])
except Exception as e:
    print(f"{name},{n},,,,,report unreadable: {e}")
    sys.exit()
codes = " ".join(f"{k}={v}" for k, v in r.get("errors_by_code", {}).items())
print(f"{name},{n},{r['calls']},{r['errors']},{r['p50_ms']:.3f},{r['p99_ms']:.3f},{codes}")
PYEOF
  done
}
bench_loop stream rvc --mode=stream --concurrency=8 --rate=4 & pids+=($!)
bench_loop unary a --mode=unary --concurrency=4 --rate=20 & pids+=($!)

# Evictions, versions, builds and rotations on their own clocks.
(i=0; while [ "$(date +%s)" -lt "$end" ]; do
   i=$((i + 1))
   if [ $((i % 2)) -eq 0 ]; then s=b; else s=rvc; fi
   "$CLI" load "${admin[@]}" --speaker="$s" >/dev/null 2>>"$OUT/admin-errors.log"
   sleep 20
 done) & pids+=($!)
(v=1; while [ "$(date +%s)" -lt "$end" ]; do
   sleep 60
   v=$((v + 1))
   staging="$repo/rvc/.staging-soak-$v"
   mkdir -p "$staging" && cp "$FIXTURE" "$staging/index.faiss" &&
   printf '{"format": 1, "index_file": "index.faiss"}\n' >"$staging/metadata.json" &&
   mv "$staging" "$repo/rvc/$v"
 done) & pids+=($!)
(while [ "$(date +%s)" -lt "$end" ]; do
   "$CLI" build "${admin[@]}" --timeout=600s --speaker=built --input="$work/features" \
     --recipe=rvc >/dev/null 2>>"$OUT/admin-errors.log"
   sleep 300
 done) & pids+=($!)
(t=0; while [ "$(date +%s)" -lt "$end" ]; do
   sleep 120
   t=$((t + 1))
   printf 'soak-user-token-rotated-%08d\n' "$t" >>"$work/user.tokens"
 done) & pids+=($!)

while [ "$(date +%s)" -lt "$end" ]; do
  kill -0 "$server_pid" 2>/dev/null || { echo "the server died"; tail -30 "$OUT/server.log"; exit 1; }
  sleep 5
done
# The periodic loops sleep between their steps: end them (a bench in progress ends on its own).
sleep 5
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
pids=()
metrics=$("$PY" -c '
import sys, urllib.request
print(urllib.request.urlopen("http://127.0.0.1:" + sys.argv[1] + "/metrics", timeout=10).read().decode())' \
  "$metrics_port")
echo "$metrics" >"$OUT/metrics.txt"
kill -TERM "$server_pid"; wait "$server_pid"; server_code=$?; server_pid=""

"$PY" - "$OUT" "$DURATION" "$server_code" <<'PYEOF' | tee "$OUT/summary.txt"
import csv, re, sys
out, duration, server_code = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [r for r in csv.DictReader(open(f"{out}/resources.csv")) if r["rss_kb"]]
settle = 300 if duration >= 1500 else duration // 5
base = [r for r in rows if int(r["seconds"]) >= settle] or rows
print(f"soak of {duration} s; server exit code after SIGTERM: {server_code}")

def median(values):
    values = sorted(values)
    return values[len(values) // 2]


# Peaks come and go with the builds; the trend compares the first and the last window after the
# warm-up (5 minutes each, or a fifth of a shorter run).
window = settle
early = [r for r in base if int(r["seconds"]) < settle + window] or base[:1]
late = [r for r in base if int(r["seconds"]) >= duration - window] or base[-1:]
for key, name in (("rss_kb", "RSS"), ("rss_anon_kb", "  anonymous"), ("rss_file_kb", "  file-backed")):
    first, settled = int(rows[0][key]), int(base[0][key])
    top = max(int(r[key]) for r in base)
    start_median = median([int(r[key]) for r in early])
    end_median = median([int(r[key]) for r in late])
    print(f"{name}: {first} kB at start, {settled} kB at {base[0]['seconds']} s, "
          f"max {top} kB after it ({100.0 * (top - settled) / settled:+.1f}%); "
          f"median {start_median} kB in the first {window} s after the warm-up, "
          f"{end_median} kB in the last {window} s: growth {100.0 * (end_median - start_median) / start_median:+.1f}%")


def mappings(path):  # smaps: the Rss of each mapping, summed by what it maps
    sizes, name = {}, None
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return sizes
    for line in lines:
        head = line.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            # Anonymous mappings by address: an arena or a buffer shows as one that grew or is new.
            name = head[5] if len(head) > 5 else f"anonymous {head[0]}"
        elif head and head[0] == "Rss:":
            sizes[name] = sizes.get(name, 0) + int(head[1])
    return sizes


before, after = mappings(f"{out}/smaps.settled"), mappings(f"{out}/smaps.last")
grown = sorted(((after.get(k, 0) - before.get(k, 0), k) for k in set(before) | set(after)), reverse=True)
if before and after:
    print("RSS change by mapping, end of warm-up to end (largest 5): " +
          ", ".join(f"{k} {d:+d} kB" for d, k in grown[:5]))
for key in ("threads", "fds"):
    values = [int(r[key]) for r in base]
    print(f"{key}: {min(values)}..{max(values)} after {base[0]['seconds']} s "
          f"(first {rows[0][key]}, last {rows[-1][key]})")
calls = {}
for line in open(f"{out}/metrics.txt"):
    m = re.match(r'timbre_rpc_calls_total\{method="([^"]+)",code="([^"]+)"\} ([0-9.e+]+)', line)
    if m and m.group(2) != "OK":
        calls[(m.group(1), m.group(2))] = float(m.group(3))
print("errors by method and code (server metrics): " +
      (", ".join(f"{k[0]} {k[1]} {int(v)}" for k, v in sorted(calls.items())) or "none"))
for line in open(f"{out}/metrics.txt"):
    if line.startswith("timbre_rejected_calls_total{") or line.startswith("timbre_index_evictions_total") \
            or line.startswith("timbre_credential_reloads_total{") or line.startswith("timbre_build_jobs_finished_total{"):
        print("  " + line.strip())
print("p99 per slice (load, slice, calls, errors, p50 ms, p99 ms, errors by code):")
for line in open(f"{out}/slices.csv").read().splitlines()[1:]:
    print("  " + line)
PYEOF
