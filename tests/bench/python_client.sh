#!/usr/bin/env bash
# The Python client's benchmark: RVC's real-time workload (768-d, IVF3333,Flat trained as RVC
# trains it, nprobe 1, k 8, 16 frames per call, 4 calls per second per client) measured in one
# run on this machine, on the index and held-out queries of tests/bench/run.sh:
#   - RVC's own in-process step in Python (numpy + the AVX2 faiss), one call at a time;
#   - the C++ load generator (timbre bench), 1 and 50 callers, unary and stream;
#   - the same loop written with timbre_client (python_client_loop.py), 1 and 50 clients in
#     separate processes, unary blend and a BlendStream session, float32 and float16;
#   - the Python client's own work per call (python_client_overhead.py).
# Writes a Markdown table to bench-data/python-results.md. Run it under the benchmark lock:
#   flock /tmp/timbre-bench.lock tests/bench/python_client.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_RUN="${1:-30}"
bash deploy/install-deps.sh --python
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target timbre-server timbre timbre_python
AVX2_PY=/opt/timbre/faiss/python
DATA=bench-data
INDEX="$DATA/repo/bench/added_IVF3333_Flat_nprobe_1_bench_v2.index"
if [ ! -f "$INDEX" ]; then
  echo "bench: training the benchmark index as RVC does (a few minutes)"
  PYTHONPATH="$AVX2_PY" /usr/bin/python3 tests/bench/make_bench_index.py "$DATA"
fi
export PYTHONPATH="$PWD/build/client/python"
RUNS="$DATA/python-runs.txt"
: > "$RUNS"

echo "bench: RVC's in-process step"
echo "rvc|$(PYTHONPATH="$AVX2_PY" /usr/bin/python3 tests/bench/rvc_step.py "$INDEX" "$DATA/queries.npy" 16 400)" >> "$RUNS"
echo "bench: the Python client's own work per call"
echo "overhead|$(/usr/bin/python3 tests/bench/python_client_overhead.py 16 768)" >> "$RUNS"

PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
build/server/timbre-server --repo="$DATA/repo" --host=127.0.0.1 --port="$PORT" --metrics_port=-1 \
  --poll_interval=0 > "$DATA/server.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 300); do grep -q "timbre serving on" "$DATA/server.log" && break; sleep 0.2; done
grep -q "timbre serving on" "$DATA/server.log" || { cat "$DATA/server.log"; exit 1; }

for clients in 1 50; do
  for mode in unary stream; do
    echo "bench: timbre bench, $clients x 4 calls/s, $mode"
    json=$(build/client/timbre bench --server="127.0.0.1:$PORT" --speaker=bench --frames=16 \
      --queries="$DATA/queries.npy" --duration="${SECONDS_PER_RUN}s" --warmup=2s --json \
      --concurrency="$clients" --rate=4 --mode="$mode")
    echo "cpp $clients $mode float32|$json" >> "$RUNS"
  done
  for mode in unary session; do
    for dtype in float32 float16; do
      echo "bench: timbre_client, $clients x 4 calls/s, $mode, $dtype"
      json=$(/usr/bin/python3 tests/bench/python_client_loop.py "127.0.0.1:$PORT" bench \
        "$DATA/queries.npy" --clients="$clients" --rate=4 --frames=16 \
        --duration="$SECONDS_PER_RUN" --mode="$mode" --dtype="$dtype")
      echo "python $clients $mode $dtype|$json" >> "$RUNS"
    done
  done
done

/usr/bin/python3 - "$RUNS" "$DATA/python-results.md" <<'PY'
import datetime, json, platform, subprocess, sys
runs, out = sys.argv[1], sys.argv[2]
cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
cores = subprocess.check_output(["nproc"]).decode().strip()
lines = ["Measured %s on %s, %s cores, %s." % (datetime.date.today(), cpu, cores, platform.platform()),
         "", "| what | clients | calls/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|"]
overhead = None
for line in open(runs):
    name, js = line.rstrip("\n").split("|", 1)
    r = json.loads(js)
    if name == "rvc":
        lines.append("| RVC step in-process, Python, %s | 1 (back to back) | %.0f | %.3f | %.3f | - |"
                     % (r["faiss"], 1e3 / r["p50_ms"], r["p50_ms"], r["p99_ms"]))
    elif name == "overhead":
        overhead = r
    else:
        kind, clients, mode, dtype = name.split()
        what = ("C++ timbre bench, %s" % mode) if kind == "cpp" else (
            "timbre_client, %s, %s" % ("blend" if mode == "unary" else "session", dtype))
        lines.append("| %s | %s x 4 calls/s | %.0f | %.3f | %.3f | %d |" % (
            what, clients, r["calls_per_second"], r["p50_ms"], r["p99_ms"], r["errors"]))
if overhead:
    lines += ["", "Client work per call (16 x 768, no network): float32 encode %.1f us + decode %.1f us"
              " = %.1f us; float16 %.1f + %.1f = %.1f us." % tuple(overhead[k] for k in (
                  "float32_encode_us", "float32_decode_us", "float32_total_us",
                  "float16_encode_us", "float16_decode_us", "float16_total_us"))]
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
