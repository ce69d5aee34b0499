#!/usr/bin/env bash
# The build benchmark: timbre's build jobs against RVC's own train_index, in one run on this
# machine, on generated 768-d feature sets laid out as RVC writes them:
#   - the `rvc` recipe on 130,000 rows, against RVC's train_index in Python with the same AVX2
#     faiss build and the same shuffle seed;
#   - the `auto` recipe's report on the same rows;
#   - k-means compression of 400,000 rows to 10,000 centroids (RVC's threshold and size).
# Writes bench-data/build-results.md. Usage: tests/bench/build_bench.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/build.sh --python
AVX2_PY=/opt/timbre/faiss/python
DATA=bench-data
SEED=1234
mkdir -p "$DATA"
PYTHONPATH="$AVX2_PY" /usr/bin/python3 tests/bench/make_feature_sets.py "$DATA"

echo "build bench: RVC's train_index in Python"
rvc=$(PYTHONPATH="$AVX2_PY" /usr/bin/python3 tests/bench/rvc_train.py "$DATA/features130k" "$SEED" "$DATA/rvc-built.index")
echo "$rvc"

PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REPO="$DATA/build-repo"
rm -rf "$REPO" && mkdir -p "$REPO"
build/server/timbre-server --repo="$REPO" --host=127.0.0.1 --port="$PORT" --metrics_port=-1 \
  --import_root="$DATA" > "$DATA/build-server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  build/client/timbre speakers --server="127.0.0.1:$PORT" >/dev/null 2>&1 && break
  sleep 0.2
done
cli() { build/client/timbre --server="127.0.0.1:$PORT" --timeout=600s "$@"; }
set_130k=$(cli import --server_path=features130k | awk 'NR == 1 {print $3}' | tr -d :)
set_400k=$(cli import --server_path=features400k | awk 'NR == 1 {print $3}' | tr -d :)

echo "build bench: timbre rvc recipe"
cli build --speaker=rvc130k --features="$set_130k" --recipe=rvc --seed="$SEED" 2>/dev/null | tee "$DATA/build-rvc.txt"
echo "build bench: timbre auto recipe"
cli build --speaker=auto130k --features="$set_130k" --recipe=auto --seed="$SEED" 2>/dev/null | tee "$DATA/build-auto.txt"
echo "build bench: k-means compression of 400k rows"
cli build --speaker=rvc400k --features="$set_400k" --recipe=rvc --seed="$SEED" 2>/dev/null | tee "$DATA/build-400k.txt"

/usr/bin/python3 - "$DATA" "$rvc" <<'PY'
import datetime, json, platform, re, subprocess, sys
data, rvc = sys.argv[1], json.loads(sys.argv[2])
cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
cores = subprocess.check_output(["nproc"]).decode().strip()
def stages(name):
    text = open("%s/%s" % (data, name)).read()
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^\s+(\w+)\s+([\d.]+) s$", text, re.M)}, text
ours, _ = stages("build-rvc.txt")
_, auto = stages("build-auto.txt")
big, _ = stages("build-400k.txt")
server_log = open("%s/build-server.log" % data).read()
faiss_server = re.search(r"timbre: (faiss [^\n]*)", server_log).group(1)
lines = ["Measured %s on %s, %s cores, %s." % (datetime.date.today(), cpu, cores, platform.platform()), "",
         "| 130,000 x 768, recipe rvc (%s) | load + shuffle s | train + add s | write s | total s |" % rvc["description"],
         "|---|---|---|---|---|",
         "| RVC train_index, Python, %s | %.1f | %.1f | %.1f | %.1f |" % (
             rvc["faiss"], rvc["load_s"], rvc["train_s"] + rvc["add_s"],
             rvc["total_s"] - rvc["load_s"] - rvc["train_s"] - rvc["add_s"], rvc["total_s"]),
         "| timbre build job, %s | %.1f | %.1f | %.1f | %.1f |" % (
             faiss_server, ours.get("loading", 0) + ours.get("shuffling", 0), ours.get("training", 0),
             ours.get("publishing", 0), sum(ours.values())),
         "", "k-means compression of 400,000 x 768 rows to 10,000 centroids (10 iterations): %.1f s;"
             " whole build %.1f s." % (big.get("compressing", 0), sum(big.values())),
         "", "Auto recipe report on the 130,000 rows:", "", "```", auto.strip(), "```"]
open("%s/build-results.md" % data, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
