#!/usr/bin/env bash
# RVC's real-time workload (the index and queries of run.sh: 768-d, 130,000 frames, IVF3333,Flat,
# nprobe 1, k 8, 16 frames per call) measured in one run for RVC's in-process step (Python, AVX2
# faiss), a release's timbre-server and this tree's, with the same load generator (this tree's
# `timbre bench`) on the same machine:
#   - one caller back to back (unary): p50, p99;
#   - saturation: the best frames/s of 16 and 32 callers back to back (stream);
#   - real-time clients: the most callers at 4 calls/s each (16 frames, stream) served with an
#     end-to-end p99 <= 5 ms and no errors, found by doubling then bisection.
# The servers run in turn, ROUNDS times (release first in odd rounds, this tree first in even).
# Writes bench-data/release_compare.md.
#   tests/bench/release_compare.sh RELEASE_BUILD_DIR [SECONDS] [ROUNDS]
# RELEASE_BUILD_DIR holds server/timbre-server of the release, e.g. a worktree of commit 4b70023
# built with deploy/build.sh; this tree must be built with deploy/build.sh --python.
set -euo pipefail
cd "$(dirname "$0")/../.."
RELEASE_BUILD="$1"
SECONDS_PER_RUN="${2:-8}"
ROUNDS="${3:-1}"
[ -x "$RELEASE_BUILD/server/timbre-server" ] || { echo "no $RELEASE_BUILD/server/timbre-server" >&2; exit 2; }
[ -x build/server/timbre-server ] && [ -d /opt/timbre/faiss/python ] ||
  { echo "run deploy/build.sh --python first" >&2; exit 2; }
# shellcheck source=tests/bench/bench_index.sh
source tests/bench/bench_index.sh
OUT="$DATA/release_compare.txt"
: > "$OUT"
echo "bench: RVC's in-process step"
echo "rvc|rvc|$(PYTHONPATH="$AVX2_PY" /usr/bin/python3 tests/bench/rvc_step.py "$INDEX" "$DATA/queries.npy" 16 400)" >> "$OUT"

# shellcheck source=tests/bench/bench_servers.sh
source tests/bench/bench_servers.sh
measure() {  # name, server binary
  local name="$1" binary="$2" queries="$DATA/queries.npy"
  start_server "$binary" "$DATA/repo"
  echo "bench: $name"
  echo "$name|1 caller|$(bench bench "$queries" "$SECONDS_PER_RUN" --concurrency=1)" >> "$OUT"
  echo "$name|16 callers|$(bench bench "$queries" "$SECONDS_PER_RUN" --concurrency=16 --mode=stream)" >> "$OUT"
  echo "$name|32 callers|$(bench bench "$queries" "$SECONDS_PER_RUN" --concurrency=32 --mode=stream)" >> "$OUT"
  echo "$name|clients|{\"clients\": $(realtime_clients "$name" bench "$queries" "$SECONDS_PER_RUN" "$OUT")}" >> "$OUT"
  stop_server
}
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then
    measure "release" "$RELEASE_BUILD/server/timbre-server"
    measure "now" build/server/timbre-server
  else
    measure "now" build/server/timbre-server
    measure "release" "$RELEASE_BUILD/server/timbre-server"
  fi
done

/usr/bin/python3 - "$OUT" "$RELEASE_BUILD" <<'PY'
import collections, datetime, json, platform, subprocess, sys
out, release = sys.argv[1], sys.argv[2]
cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
rows = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(out):
    name, what, js = line.rstrip("\n").split("|", 2)
    rows[name][what].append(json.loads(js))
rvc = rows["rvc"]["rvc"][0]
lines = ["Measured %s on %s, %s cores, %s; release build: %s." % (
             datetime.date.today(), cpu, subprocess.check_output(["nproc"]).decode().strip(),
             platform.platform(), release), "",
         "| what | 1 caller p50 ms | 1 caller p99 ms | saturation frames/s | real-time clients at p99 <= 5 ms |",
         "|---|---|---|---|---|",
         "| RVC step in-process, Python, %s | %.3f | %.3f | %.0f (1 thread) | - |" % (
             rvc["faiss"], rvc["p50_ms"], rvc["p99_ms"], rvc["frames_per_second"])]
summary = {}
for name in ("release", "now"):
    r = rows[name]
    for i, one in enumerate(r["1 caller"]):
        sat = max(r["16 callers"][i]["frames_per_second"], r["32 callers"][i]["frames_per_second"])
        clients = r["clients"][i]["clients"]
        summary.setdefault(name, []).append((one["p50_ms"], one["p99_ms"], sat, clients))
        lines.append("| timbre %s (round %d) | %.3f | %.3f | %.0f | %d |" % (
            name, i + 1, one["p50_ms"], one["p99_ms"], sat, clients))
if "release" in summary and "now" in summary:
    lines.append("")
    for i, (rel, now) in enumerate(zip(summary["release"], summary["now"])):
        lines.append("Round %d, now / release: one-caller p50 %.2fx, saturation %.2fx, real-time clients %.2fx." % (
            i + 1, now[0] / rel[0], now[2] / rel[2], now[3] / max(rel[3], 1)))
open(out.replace(".txt", ".md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
