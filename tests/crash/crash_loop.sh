#!/usr/bin/env bash
# Crash loop: kills timbre-server with SIGKILL at random moments while it publishes versions,
# accepts uploads, runs builds and writes job records, then restarts it and checks that nothing
# was lost or left half-written.
#
#   tests/crash/crash_loop.sh SERVER CLI [ROUNDS] [SEED]     (default 50 rounds, seed 1)
#   e.g. tests/crash/crash_loop.sh build/server/timbre-server build/client/timbre 50
#
# Each round: start the server on the same repository and work directory, wait until it serves,
# check the invariants below, start a mixed load (uploads, upload+build jobs of new versions,
# blends), wait a random 0.2-8 s, SIGKILL the server. After the last round the server is started
# once more and checked. Invariants after every restart:
#   1. every speaker serves (state loaded) its highest complete version: the highest numbered
#      directory that holds metadata.json and the index it names;
#   2. no .staging-* directory is left in any speaker directory or in the feature-set store once
#      the server serves (crash leftovers are removed at start), and every feature set has a
#      readable manifest.json;
#   3. every job record is readable JSON with a valid id, none is queued or running, and every
#      job the kill interrupted is failed with the reason ("the server stopped during the build").
# Prints one line per round and a summary; exits 1 if any check failed. Loopback only; everything
# lives in a temporary directory removed at the end.
set -uo pipefail
SERVER="$(realpath "$1")"
CLI="$(realpath "$2")"
ROUNDS="${3:-50}"
SEED="${4:-1}"
HERE="$(cd "$(dirname "$0")" && pwd)"
FIXTURE="$HERE/../data/added_IVF25_Flat_nprobe_1_fixture_v1.index"
PY=/usr/bin/python3
RANDOM=$SEED

work=$(mktemp -d)
pid=""
load_pids=()
cleanup() {
  for p in "${load_pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

repo="$work/repo"
work_dir="$work/state"
mkdir -p "$repo/rvc" "$work_dir" "$work/features"
cp "$FIXTURE" "$repo/rvc/"
# A small feature set laid out as RVC writes it: two .npy files of 1,000 frames of dim 256.
"$PY" - "$work/features" <<'PYEOF'
import sys
import numpy as np
rng = np.random.default_rng(3)
centres = rng.standard_normal((20, 256)).astype("float32")
for i in range(2):
    rows = centres[rng.integers(0, 20, 1000)] + 0.1 * rng.standard_normal((1000, 256)).astype("float32")
    np.save(f"{sys.argv[1]}/{i}.npy", rows.astype("float32"))
PYEOF

port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
server_addr="127.0.0.1:$port"
failures=0
log="$work/server.log"

start_server() {
  "$SERVER" --repo="$repo" --work_dir="$work_dir" --host=127.0.0.1 --port="$port" \
    --metrics_port=-1 --poll_interval=200ms --log_level=warn >>"$log" 2>&1 &
  pid=$!
  local i
  for i in $(seq 1 600); do
    if "$CLI" speakers --server="$server_addr" --timeout=2s >"$work/speakers" 2>/dev/null &&
       ! grep -q " loading " "$work/speakers"; then
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { echo "server exited at start"; tail -20 "$log"; return 1; }
    sleep 0.1
  done
  echo "server did not serve within 60 s"
  return 1
}

# Checks the invariants; prints each violation, returns the number found.
check() {
  "$PY" - "$repo" "$work_dir" "$work/speakers" "$work/interrupted" <<'PYEOF'
import json, os, re, sys
repo, state, speakers_file, interrupted_file = sys.argv[1:5]
problems = []
serving = {}
for line in open(speakers_file).read().splitlines()[1:]:
    parts = line.split()
    if len(parts) >= 7 and not line.startswith("  "):
        serving[parts[0]] = (parts[1], parts[6])
for speaker in sorted(os.listdir(repo)):
    directory = os.path.join(repo, speaker)
    if speaker.startswith(".") or not os.path.isdir(directory):
        continue
    versions = []
    for entry in os.listdir(directory):
        path = os.path.join(directory, entry)
        if entry.startswith(".staging-"):
            problems.append(f"staging directory left: {speaker}/{entry}")
        if re.fullmatch(r"[1-9][0-9]*", entry) and os.path.isdir(path):
            versions.append(int(entry))
    complete = []
    for v in versions:
        meta = os.path.join(directory, str(v), "metadata.json")
        try:
            index_file = json.load(open(meta)).get("index_file", "index.faiss")
        except Exception as e:
            problems.append(f"{speaker}/{v}: visible version with unreadable metadata ({e})")
            continue
        if not os.path.isfile(os.path.join(directory, str(v), index_file)):
            problems.append(f"{speaker}/{v}: visible version without its index file")
            continue
        complete.append(v)
    expected = str(max(complete)) if complete else None
    state_version = serving.get(speaker)
    if state_version is None:
        problems.append(f"speaker {speaker} is not listed")
    elif state_version[0] != "loaded":
        problems.append(f"speaker {speaker} is {state_version[0]}")
    elif expected is not None and state_version[1] != expected:
        problems.append(f"speaker {speaker} serves {state_version[1]}, expected {expected}")
sets = os.path.join(state, "feature-sets")
if os.path.isdir(sets):
    for entry in os.listdir(sets):
        if entry.startswith(".staging-") or entry.startswith(".deleting-"):
            problems.append(f"feature-set leftover: {entry}")
        elif entry.startswith("fs-"):
            try:
                json.load(open(os.path.join(sets, entry, "manifest.json")))
            except Exception as e:
                problems.append(f"feature set {entry} without a readable manifest ({e})")
interrupted = set(open(interrupted_file).read().split()) if os.path.exists(interrupted_file) else set()
jobs = os.path.join(state, "jobs")
if os.path.isdir(jobs):
    for entry in os.listdir(jobs):
        path = os.path.join(jobs, entry)
        if not entry.endswith(".json"):
            problems.append(f"job directory holds {entry}")
            continue
        try:
            record = json.load(open(path))
        except Exception as e:
            problems.append(f"job record {entry} unreadable ({e})")
            continue
        state_name = record.get("state", "")
        if not re.fullmatch(r"job-[0-9a-f]{12}", record.get("id", "")):
            problems.append(f"job record {entry} has id {record.get('id')!r}")
        if state_name in ("STATE_QUEUED", "STATE_RUNNING", ""):
            problems.append(f"job {entry} is still {state_name or 'without a state'}")
        if record.get("id") in interrupted and state_name == "STATE_FAILED" and \
                "the server stopped" not in record.get("error", ""):
            problems.append(f"interrupted job {entry} failed without the reason")
for p in problems:
    print("  " + p)
sys.exit(min(len(problems), 100))
PYEOF
}

# Load until killed: uploads, upload+build jobs of new versions, blends.
run_load() {
  local round="$1" n=0
  while true; do
    n=$((n + 1))
    case $((n % 3)) in
      0) "$CLI" upload --server="$server_addr" --input="$work/features" --timeout=30s >/dev/null 2>&1 ;;
      1) "$CLI" build --server="$server_addr" --speaker="s$((round % 4))" \
           --input="$work/features" --recipe=rvc --timeout=60s >/dev/null 2>&1 ;;
      2) "$CLI" speaker --server="$server_addr" --speaker=rvc --timeout=5s >/dev/null 2>&1 ;;
    esac
  done
}

# Job ids that were queued or running when the server was killed.
record_interrupted() {
  "$PY" - "$work_dir/jobs" >>"$work/interrupted" <<'PYEOF'
import json, os, sys
d = sys.argv[1]
if os.path.isdir(d):
    for entry in os.listdir(d):
        try:
            record = json.load(open(os.path.join(d, entry)))
        except Exception:
            continue
        if record.get("state") in ("STATE_QUEUED", "STATE_RUNNING"):
            print(record.get("id", ""))
PYEOF
}

start_all=$(date +%s)
for round in $(seq 1 "$ROUNDS"); do
  if ! start_server; then failures=$((failures + 1)); break; fi
  if out=$(check); then status="ok"; else status="FAILED"; failures=$((failures + 1)); fi
  for i in 1 2; do run_load "$round" & load_pids+=($!); done
  delay_ms=$((200 + RANDOM % 7800))
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null
  pid=""
  for p in "${load_pids[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  load_pids=()
  record_interrupted
  versions=$(find "$repo" -mindepth 2 -maxdepth 2 -regex '.*/[1-9][0-9]*' | wc -l)
  jobs=$(find "$work_dir/jobs" -name '*.json' 2>/dev/null | wc -l)
  echo "round $round: checks $status; killed after ${delay_ms} ms;" \
       "$versions versions, $jobs job records"
  [ "$status" = "ok" ] || echo "$out"
done
if start_server; then
  if out=$(check); then echo "final restart: checks ok"; else failures=$((failures + 1)); echo "final restart: FAILED"; echo "$out"; fi
  kill -KILL "$pid"; wait "$pid" 2>/dev/null; pid=""
else
  failures=$((failures + 1))
fi
interrupted=$(sort -u "$work/interrupted" 2>/dev/null | grep -c . || true)
echo "crash loop: $ROUNDS rounds in $(( $(date +%s) - start_all )) s, $interrupted jobs interrupted" \
     "by a kill, $failures failed checks"
[ "$failures" -eq 0 ]
