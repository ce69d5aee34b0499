#!/usr/bin/env bash
# Speech-like data sets, in one run each: RVC's own recipe and timbre's auto recipe, fidelity and
# speed. The frames come from tests/bench/speech_features.py (eSpeak NG speech through a fixed
# random network): a stand-in for HuBERT features, not HuBERT; its figures compare recipes and
# speeds and say nothing about real voices. Data sets (one voice, en-us+f3, as RVC's
# 3_feature<dim>/ directories):
#   v2:     768-d, 130,000 frames    v1: 256-d, 130,000 frames    small: 768-d, 20,000 frames
# queried with 2 minutes (6,000 frames) of another voice (en-gb+m3) reading other text.
# Per data set:
#   - RVC's index, trained by RVC's train_index (rvc_train.py, seed 1234), and timbre's auto recipe
#     (`timbre build --recipe=auto`, same seed; its candidate report is kept);
#   - recall@8 and mean blend cosine against exact search on the other voice's frames
#     (speech_fidelity.py);
#   - RVC's in-process step (rvc_step.py, AVX2 faiss) on RVC's index; timbre (this tree and, when
#     RELEASE_BUILD_DIR is given, that release) serving each index: one caller's p50/p99,
#     saturation (16 callers back to back), real-time clients at p99 <= 5 ms.
# Writes bench-data/speech/results.md. MAX_CALL_MS in the environment is passed to the auto
# recipe as its latency bound (--max_call_ms; default: the recipe's own).
#   [MAX_CALL_MS=ms] tests/bench/speech_bench.sh [SECONDS] [RELEASE_BUILD_DIR] [SETS...]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_RUN="${1:-4}"
RELEASE_BUILD="${2:-}"
shift 2 2>/dev/null || shift $#
SETS=("${@:-v2 v1 small}")
[ -x build/server/timbre-server ] && [ -d /opt/timbre/faiss/python ] ||
  { echo "run deploy/build.sh --python first" >&2; exit 2; }
command -v espeak-ng >/dev/null && [ -d /usr/share/games/fortunes ] ||
  apt-get install -y -qq --no-install-recommends espeak-ng fortunes-min >/dev/null
AVX2_PY=/opt/timbre/faiss/python
ROOT=bench-data/speech
mkdir -p "$ROOT"
OUT="$ROOT/runs.txt"
: > "$OUT"
# shellcheck source=tests/bench/bench_servers.sh
source tests/bench/bench_servers.sh

for set in ${SETS[*]}; do
  case "$set" in
    v2) dim=768 minutes=43.33334 ;;
    v1) dim=256 minutes=43.33334 ;;
    small) dim=768 minutes=6.66667 ;;
    *) echo "unknown set $set" >&2; exit 2 ;;
  esac
  dir="$ROOT/$set"
  mkdir -p "$dir"
  if [ ! -d "$dir/features" ]; then
    echo "bench: generating the $set frames"
    /usr/bin/python3 tests/bench/speech_features.py "$dir/features" --voice=en-us+f3 \
      --minutes="$minutes" --dim="$dim" --seed=1
    /usr/bin/python3 tests/bench/speech_features.py "$dir/queries.npy" --voice=en-gb+m3 \
      --minutes=2 --dim="$dim" --seed=9 --one_file
  fi
  rm -rf "$dir/repo" && mkdir -p "$dir/repo/rvc"
  echo "bench: $set: RVC's train_index"
  PYTHONPATH="$AVX2_PY" /usr/bin/python3 tests/bench/rvc_train.py "$dir/features" 1234 \
    "$dir/repo/rvc/added_rvc.index" > "$dir/rvc_train.json"
  echo "bench: $set: timbre's auto recipe"
  start_server build/server/timbre-server "$dir/repo"
  build/client/timbre build --server="127.0.0.1:$PORT" --timeout=3600s --speaker=auto \
    --input="$dir/features" --recipe=auto --seed=1234 ${MAX_CALL_MS:+--max_call_ms="$MAX_CALL_MS"} \
    2>/dev/null | tr '\r' '\n' |
    grep -a -v '^\[' > "$dir/auto_report.txt"
  stop_server
  auto_nprobe=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["nprobe"])' \
    "$dir/repo/auto/1/metadata.json")
  for name in rvc auto; do
    if [ "$name" = rvc ]; then index="$dir/repo/rvc/added_rvc.index" nprobe=1
    else index="$dir/repo/auto/1/index.faiss" nprobe="$auto_nprobe"; fi
    echo "$set|$name|fidelity|$(PYTHONPATH="$AVX2_PY" /usr/bin/python3 tests/bench/speech_fidelity.py \
      "$index" "$dir/queries.npy" "$nprobe")" >> "$OUT"
  done
  echo "$set|rvc|in-process|$(PYTHONPATH="$AVX2_PY" /usr/bin/python3 tests/bench/rvc_step.py \
    "$dir/repo/rvc/added_rvc.index" "$dir/queries.npy" 16 400)" >> "$OUT"
  servers=("now build/server/timbre-server")
  [ -n "$RELEASE_BUILD" ] && servers+=("release $RELEASE_BUILD/server/timbre-server")
  for entry in "${servers[@]}"; do
    read -r server binary <<< "$entry"
    start_server "$binary" "$dir/repo"
    for name in rvc auto; do
      # The release serves RVC's files; auto's indexes are this tree's.
      [ "$server" = release ] && [ "$name" = auto ] && continue
      echo "bench: $set: timbre $server serving $name"
      q="$dir/queries.npy"
      echo "$set|$name|$server 1 caller|$(bench "$name" "$q" "$SECONDS_PER_RUN" --concurrency=1)" >> "$OUT"
      echo "$set|$name|$server 16 callers|$(bench "$name" "$q" "$SECONDS_PER_RUN" --concurrency=16 --mode=stream)" >> "$OUT"
      clients=$(realtime_clients "$set $name $server" "$name" "$q" "$SECONDS_PER_RUN" "$ROOT/realtime.txt")
      echo "$set|$name|$server clients|{\"clients\": $clients}" >> "$OUT"
    done
    stop_server
  done
done

/usr/bin/python3 - "$OUT" "$ROOT" <<'PY'
import collections, datetime, json, platform, subprocess, sys
out, root = sys.argv[1], sys.argv[2]
cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
runs = collections.defaultdict(dict)
for line in open(out):
    s, name, what, js = line.rstrip("\n").split("|", 3)
    runs[(s, name)][what] = json.loads(js)
titles = {"v2": "768-d (v2), 130,000 frames", "v1": "256-d (v1), 130,000 frames",
          "small": "768-d (v2), 20,000 frames"}
lines = ["Measured %s on %s, %s cores, %s. Speech-like frames (a stand-in for HuBERT, not HuBERT)." % (
    datetime.date.today(), cpu, subprocess.check_output(["nproc"]).decode().strip(), platform.platform())]
for s in [k for k in titles if (k, "rvc") in runs]:
    rvc, auto = runs[(s, "rvc")], runs[(s, "auto")]
    report = open("%s/%s/auto_report.txt" % (root, s)).read()
    kept = [l for l in report.splitlines() if "index:" in l]
    lines += ["", "#### %s; auto kept %s" % (titles[s], kept[0].split("index:", 1)[1].strip() if kept else "?"), "",
              "| what | index | recall@8 | blend cosine | p50 ms | p99 ms | saturation frames/s | real-time clients |",
              "|---|---|---|---|---|---|---|---|"]
    f = rvc["fidelity"]; r = rvc["in-process"]
    lines.append("| RVC step in-process, Python, %s | RVC's | %.4f | %.6f | %.3f | %.3f | %.0f (1 thread) | - |" % (
        r["faiss"], f["recall_at_8"], f["mean_blend_cosine"], r["p50_ms"], r["p99_ms"], r["frames_per_second"]))
    for server in ("release", "now"):
        for name, data in (("RVC's", rvc), ("auto's", auto)):
            if server + " 1 caller" not in data:
                continue
            one, sat, f = data[server + " 1 caller"], data[server + " 16 callers"], data["fidelity"]
            lines.append("| timbre %s | %s | %.4f | %.6f | %.3f | %.3f | %.0f | %d |" % (
                server, name, f["recall_at_8"], f["mean_blend_cosine"], one["p50_ms"], one["p99_ms"],
                sat["frames_per_second"], data[server + " clients"]["clients"]))
open(root + "/results.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
