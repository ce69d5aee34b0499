#!/usr/bin/env bash
# The benchmark of RVC's real-time workload: 768-d, 130,000 vectors, IVF3333,Flat trained as RVC
# trains it, nprobe 1, k 8, 16 frames per call. Measures, in one run on this machine:
#   - RVC's in-process step (numpy + faiss in Python) with the AVX2 faiss timbre uses and with
#     Debian's python3-faiss (generic build);
#   - timbre end to end through gRPC on loopback (light load and saturation, unary and streaming),
#     with the server-side time each call reported, and the light load again with
#     --split_idle_searches=false and with --search_idle_spin=50ms.
# Writes a Markdown table to bench-data/results.md. Usage: tests/bench/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_RUN="${1:-10}"
bash deploy/build.sh --python
if ! dpkg-query -W -f='${Status}' python3-faiss 2>/dev/null | grep -q "install ok installed"; then
  apt-get install -y -qq --no-install-recommends python3-faiss >/dev/null
fi
# shellcheck source=tests/bench/bench_index.sh
source tests/bench/bench_index.sh

echo "bench: RVC's in-process step"
rvc_avx2=$(PYTHONPATH="$AVX2_PY" /usr/bin/python3 tests/bench/rvc_step.py "$INDEX" "$DATA/queries.npy" 16 400)
rvc_generic=$(/usr/bin/python3 tests/bench/rvc_step.py "$INDEX" "$DATA/queries.npy" 16 100)
echo "$rvc_avx2"; echo "$rvc_generic"

# shellcheck source=tests/bench/bench_servers.sh
source tests/bench/bench_servers.sh  # PORT, SERVER, stop_server
run() {  # name, then timbre bench flags
  local name="$1"; shift
  local json
  # timbre bench exits 1 when calls failed; the overload runs expect refusals, which the table
  # shows by code, so only a missing report stops the benchmark.
  json=$(build/client/timbre bench --server="127.0.0.1:$PORT" --speaker=bench --frames=16 \
    --queries="$DATA/queries.npy" --duration="${SECONDS_PER_RUN}s" --warmup=2s --json "$@") || true
  [[ "$json" == "{"* ]] || { echo "bench: $name produced no report" >&2; exit 1; }
  echo "$name $json"
  echo "$name|$json" >> "$DATA/runs.txt"
}
# measure LABEL SERVER_FLAGS PATTERNS ENV...: starts the server with ENV and SERVER_FLAGS, runs
# the load patterns (all; light: the one-caller and real-time ones; overload: more calls than
# the server can search, offered at a fixed rate), stops it.
measure() {
  local label="$1" flags="$2" patterns="$3"; shift 3
  # shellcheck disable=SC2086  # flags are words
  env "$@" build/server/timbre-server --repo="$DATA/repo" --host=127.0.0.1 --port="$PORT" \
    --metrics_port=-1 --poll_interval=0 $flags > "$DATA/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 100); do
    build/client/timbre speakers --server="127.0.0.1:$PORT" >/dev/null 2>&1 && break
    sleep 0.2
  done
  local blas
  blas=$(grep -o 'OpenBLAS kernels [A-Za-z0-9]*' "$DATA/server.log" | head -1)
  label="$label ($blas)"
  echo "bench: $label"
  if [ "$patterns" != overload ]; then
    run "$label: 1 caller back to back, unary" --concurrency=1
    run "$label: 1 caller back to back, stream" --concurrency=1 --mode=stream
    run "$label: 8 callers x 4 calls/s, stream" --concurrency=8 --rate=4 --mode=stream
  fi
  if [ "$patterns" = all ]; then
    run "$label: 16 callers back to back, unary" --concurrency=16
    run "$label: 16 callers back to back, stream" --concurrency=16 --mode=stream
    run "$label: 32 callers back to back, stream" --concurrency=32 --mode=stream
  fi
  if [ "$patterns" = overload ]; then
    run "$label: 64 callers x 40 calls/s, unary" --concurrency=64 --rate=40
  fi
  stop_server
}
: > "$DATA/runs.txt"
# As the environment has it (this machine pins OPENBLAS_CORETYPE=Haswell), then with the server's
# own choice (SkylakeX kernels on a CPU with AVX-512).
measure "timbre" "" all OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-}"
measure "timbre" "" all -u OPENBLAS_CORETYPE
# The light patterns again with every search on one thread, for --split_idle_searches.
measure "timbre --split_idle_searches=false" "--split_idle_searches=false" light \
  OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-}"
measure "timbre --split_idle_searches=false" "--split_idle_searches=false" light \
  -u OPENBLAS_CORETYPE
# And with a search worker polling 50 ms for the next call, for --search_idle_spin.
measure "timbre --search_idle_spin=50ms" "--search_idle_spin=50ms" light \
  OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-}"
measure "timbre --search_idle_spin=50ms" "--search_idle_spin=50ms" light -u OPENBLAS_CORETYPE
# Overload: 2,560 calls/s offered, beyond what 2 cores search. With the default queue bound (64)
# every call is admitted and waits; with shorter ones the excess is refused at once.
measure "timbre" "" overload -u OPENBLAS_CORETYPE
for queue in 8 2; do
  measure "timbre --max_queued_calls=$queue" "--max_queued_calls=$queue" overload \
    -u OPENBLAS_CORETYPE
done

/usr/bin/python3 - "$DATA" "$rvc_avx2" "$rvc_generic" <<'PY'
import json, platform, subprocess, sys, datetime
data, rvc_avx2, rvc_generic = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
cores = subprocess.check_output(["nproc"]).decode().strip()
lines = ["Measured %s on %s, %s cores, %s." % (datetime.date.today(), cpu, cores, platform.platform()),
         "", "| what | calls/s | frames/s | p50 ms | p99 ms | server p50 ms | server p99 ms | errors/s |",
         "|---|---|---|---|---|---|---|---|"]
for rvc, label in ((rvc_avx2, "RVC step in-process, Python, AVX2 faiss"),
                   (rvc_generic, "RVC step in-process, Python, Debian python3-faiss")):
    lines.append("| %s: %s | %.0f | %.0f | %.3f | %.3f | - | - | - |" % (
        label, rvc["faiss"], 1e3 / rvc["p50_ms"], rvc["frames_per_second"], rvc["p50_ms"], rvc["p99_ms"]))
for line in open(data + "/runs.txt"):
    name, js = line.rstrip("\n").split("|", 1)
    r = json.loads(js)
    errors = "%.0f" % (r["errors"] / r["seconds"])
    if r["errors_by_code"]:
        errors += " (%s)" % ", ".join(sorted(r["errors_by_code"]))
    lines.append("| %s | %.0f | %.0f | %.3f | %.3f | %.3f | %.3f | %s |" % (
        name, r["calls_per_second"], r["frames_per_second"], r["p50_ms"], r["p99_ms"],
        r["server_p50_ms"], r["server_p99_ms"], errors))
open(data + "/results.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
