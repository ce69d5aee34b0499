# Sourced by the benchmark scripts: sets AVX2_PY (faiss's AVX2 Python bindings), DATA
# (bench-data) and INDEX (the benchmark speaker's index, RVC's IVF3333,Flat on 130,000 generated
# frames), training the index as RVC does when it is missing (a few minutes).
AVX2_PY=/opt/timbre/faiss/python
DATA=bench-data
mkdir -p "$DATA"
INDEX="$DATA/repo/bench/added_IVF3333_Flat_nprobe_1_bench_v2.index"
if [ ! -f "$INDEX" ]; then
  echo "bench: training the benchmark index as RVC does (a few minutes)"
  PYTHONPATH="$AVX2_PY" /usr/bin/python3 tests/bench/make_bench_index.py "$DATA"
fi
