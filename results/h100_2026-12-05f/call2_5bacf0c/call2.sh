#!/usr/bin/env bash
# session 7, call 2, at the commit under test: build; the fused tests' tail (the branch kernels ran 210 of 213 in call 1);
# LAMMPS mliap/aoti timings (all four systems); step profile of water_8k; the inductor kernels' sources; test_gpu.py
set -o pipefail
export PYTHONUNBUFFERED=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
R=$OUT; mkdir -p /tmp/rest
T0=$(date +%s); at() { echo "=== $1 at $(( $(date +%s) - T0 )) s"; }
left() { echo $(( $1 - $(date +%s) + T0 )); }
finish() {
  at end
  for f in runs/bench_lammps/*/stdout.txt; do [ -e "$f" ] && { echo "===== $f"; sed -n '/Loop time/,/Nlocal/p' "$f"; } >> /tmp/rest/lammps_breakdowns.txt; done
  cp $R/build.log $R/machine.txt /tmp/rest/ 2>/dev/null; rm -f $R/build.log $R/machine.txt
  tar czf $R/rest.tgz -C /tmp rest
}
trap finish EXIT
OUT=$R STAGES=build bash benchmarks/gpu_session.sh > /tmp/rest/build_stage.txt 2>&1; echo "build rc $?"
PY=$PWD/build/gpu-session/bin/python
at "fused tail"
timeout 90 $PY -m pytest -q -p no:cacheprovider tests/model/test_fused.py -k "opcheck or training or float32_within or fused_equals_unfused" > $R/tests_fused_tail.log 2>&1; echo "rc $?"; tail -2 $R/tests_fused_tail.log
at "aoti timings"
export TORCHINDUCTOR_CACHE_DIR=/tmp/ic
timeout 230 "$PY" benchmarks/run.py lammps --lmp "$PWD/build/gpu-session/bin/lmp" --devices gpu --dtypes float32 --timeout 100 \
  --couplings aoti --out $R/lammps_aoti.json 2>&1 | grep -v "Warning" | cut -c1-120
mkdir -p /tmp/rest/kernels
for f in $(grep -rl "def triton_red_fused\|def triton_per_fused" /tmp/ic --include=*.py | head -40); do cp "$f" /tmp/rest/kernels/; done
P=runs/bench_lammps/aoti_gpu_float32/model.pt2; ls -la $P
unzip -l $P > /tmp/rest/package_files.txt 2>&1
for m in model model_ranks; do echo "$m: halo_exchange mentions $(unzip -p $P "*/aotinductor/$m/*.cpp" 2>/dev/null | grep -c halo_exchange)"; done
at "step profile"
timeout 100 "$PY" benchmarks/run.py step-profile runs/bench_lammps/water_8k_mliap_aoti_gpu_float32_analytic/in.bench \
  --steps 50 --out $R/step_profile.json 2>&1 | grep -v "Warning\|USDT" | cut -c1-140
mv $R/step_profile.txt /tmp/rest/ 2>/dev/null
at "test_gpu"
timeout $(left 585) $PY -m pytest -v -p no:cacheprovider tests/plugin/test_gpu.py -k "not float64" > $R/tests_gpu.log 2>&1; echo "rc $?"; grep -E "PASS|FAIL|SKIP|ERROR|passed|failed" $R/tests_gpu.log | cut -c1-150 | tail -20
