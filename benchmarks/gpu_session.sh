#!/usr/bin/env bash
# Everything the GPU machine does in one call: build LAMMPS + plugin offline, run the GPU tests,
# time the LAMMPS cases. Run from the repository root with the bundle of
# scripts/gpu_lammps_bundle.sh carried in .cache/gpu-bundle:
#
#   OUT=/some/folder bash benchmarks/gpu_session.sh
#
# Writes OUT/machine.txt, build.log, tests.log, lammps_md.json (one record per case).
set -uo pipefail
OUT=${OUT:?set OUT to the folder for the results}
PREFIX=${PREFIX:-/tmp/mlff}
export PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; python3 -V
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'; } >"$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

echo "=== offline build"
JOBS=$(nproc) bash scripts/offline_build.sh .cache/gpu-bundle "$PREFIX" >"$OUT/build.log" 2>&1 \
  || { tail -30 "$OUT/build.log"; exit 1; }
PY=$PREFIX/bin/python

echo "=== GPU tests (LAMMPS with CUDA exports, graph replay)"
timeout 420 "$PY" -m pytest -q -p no:cacheprovider tests/plugin/test_gpu.py tests/model/test_replay.py \
  >"$OUT/tests.log" 2>&1
tail -5 "$OUT/tests.log"

echo "=== LAMMPS benchmark"
"$PY" benchmarks/lammps_md.py --lmp "$PREFIX/bin/lmp" --largest --cpu-jobs "${CPU_JOBS:-6}" \
  --timeout "${CASE_TIMEOUT:-300}" --out "$OUT/lammps_md.json" ${BENCH_ARGS:-} 2>&1 | tail -60
