#!/usr/bin/env bash
# next session, device call 1, on branch triton-runs-forward: build; test_fused; the model alone with main's
# kernels and the branch's; LAMMPS mliap/aoti water_8k + aspirin with timing breakdowns; profiles of the C++ step
set -o pipefail
export PYTHONUNBUFFERED=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
R=$OUT
T0=$(date +%s); at() { echo "=== $1 at $(( $(date +%s) - T0 )) s"; }
finish() { at end; for f in runs/bench_lammps/*/stdout.txt; do [ -e "$f" ] && { echo "===== $f"; sed -n '/Loop time/,/Nlocal/p' "$f"; } >> "$R/lammps_breakdowns.txt"; done; }
trap finish EXIT
OUT=$R STAGES=build bash benchmarks/gpu_session.sh; echo "build rc $?"
PY=$PWD/build/gpu-session/bin/python
K=python/mlff_distiller/model/fused/message_triton.py
at "fused tests"
timeout 100 $PY -m pytest -q -p no:cacheprovider -x tests/model/test_fused.py > $R/tests_fused.log 2>&1; echo "rc $?"; tail -2 $R/tests_fused.log
at "model alone, main's kernels then the branch's"
cp $K /tmp/branch_kernels.py; cp .devcalls/main_kernels/message_triton.py $K
timeout 60 $PY benchmarks/run.py model-gpu --out $R/model_main --systems water_1029 water_8232 --dtypes float32 --modes graphs --methods analytic --no-cpu --compile --deadline-s 0 2>&1 | cut -c1-110
cp /tmp/branch_kernels.py $K
timeout 60 $PY benchmarks/run.py model-gpu --out $R/model_branch --systems water_1029 water_8232 --dtypes float32 --modes graphs --methods analytic --no-cpu --compile --deadline-s 0 2>&1 | cut -c1-110
at "aoti"
timeout 200 "$PY" benchmarks/run.py lammps --lmp "$PWD/build/gpu-session/bin/lmp" --devices gpu --dtypes float32 --timeout 100 \
  --couplings aoti --systems aspirin water_8k --out $R/lammps_aoti.json | cut -c1-100
at "step profiles"
timeout $(( 585 - $(date +%s) + T0 )) "$PY" benchmarks/run.py step-profile runs/bench_lammps/water_8k_mliap_aoti_gpu_float32_analytic/in.bench \
  runs/bench_lammps/aspirin_mliap_aoti_gpu_float32_analytic/in.bench --steps 100 --out $R/step_profile.json 2>&1 | grep -v USDT | cut -c1-160
