#!/usr/bin/env bash
# Everything the GPU machine does in one call: build LAMMPS + plugin offline, run the GPU tests,
# time the LAMMPS cases (GPU first, then the largest box, then one CPU core per case). Run from
# the repository root with the bundle of scripts/gpu_lammps_bundle.sh carried in .cache/gpu-bundle:
#
#   OUT=/some/folder bash benchmarks/gpu_session.sh
#
# Writes OUT/machine.txt, build.log, tests.log, lammps_md.json (one record per case).
set -uo pipefail
OUT=${OUT:?set OUT to the folder for the results}
PREFIX=${PREFIX:-/tmp/mlff}
export PYTHONUNBUFFERED=1
# the device machine runs us as root; Open MPI's mpirun refuses that unless told
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
T0=$(date +%s)
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; python3 -V
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'; } >"$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

echo "=== offline build"
JOBS=$(nproc) bash scripts/offline_build.sh .cache/gpu-bundle "$PREFIX" >"$OUT/build.log" 2>&1 \
  || { tail -30 "$OUT/build.log"; exit 1; }
PY=$PREFIX/bin/python
BENCH=("$PY" benchmarks/lammps_md.py --lmp "$PREFIX/bin/lmp" --out "$OUT/lammps_md.json" --append
       --timeout "${CASE_TIMEOUT:-240}")

echo "=== GPU tests (LAMMPS with CUDA exports, graph replay) at $(( $(date +%s) - T0 )) s"
timeout "${TEST_TIMEOUT:-200}" "$PY" -m pytest -q -x -p no:cacheprovider tests/plugin/test_gpu.py ${TEST_ARGS:-} \
  >"$OUT/tests.log" 2>&1
tail -5 "$OUT/tests.log"

echo "=== GPU cases at $(( $(date +%s) - T0 )) s"
"${BENCH[@]}" --devices gpu --dtypes float32 ${GPU_ARGS:-} | cut -c1-300
[ -n "${SKIP_F64:-}" ] || "${BENCH[@]}" --devices gpu --dtypes float64 --systems aspirin water_1k water_8k | cut -c1-300
[ -n "${SKIP_CPU:-}" ] && exit 0
echo "=== one CPU core per case at $(( $(date +%s) - T0 )) s"
"${BENCH[@]}" --devices cpu --cpu-jobs "${CPU_JOBS:-8}" ${CPU_ARGS:-} | cut -c1-300
echo "=== done at $(( $(date +%s) - T0 )) s"
