#!/usr/bin/env bash
# session 5, call D: the single-GPU tests alone (call C's run of them was cut by its timeout while
# three LAMMPS runs shared the card); then the v2 water NVE goes on at 0.5 fs from step 250,000
set -o pipefail
export PYTHONUNBUFFERED=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
R=/tmp/res; rm -rf $R; mkdir -p $R; T0=$(date +%s); at() { echo "=== $1 at $(( $(date +%s) - T0 )) s"; }
OUT=$R STAGES=build bash benchmarks/gpu_session.sh > $R/build_session.log 2>&1 || { tail $R/build_session.log; exit 1; }
P=$PWD/build/gpu-session; PY=$P/bin/python
at "tests"
timeout 420 $PY -m pytest -p no:cacheprovider -v tests/plugin/test_gpu.py tests/model/test_replay.py \
  tests/model/test_io_and_calculator.py tests/distill/test_device.py -rs > $R/tests_gpu.log 2>&1
echo "pytest rc $?"; grep -E "PASSED|FAILED|ERROR|SKIPPED|passed|failed" $R/tests_gpu.log | cut -c1-200 | tail -60
at "nve"
mkdir -p /tmp/main && cp inputs/water/in.nve_continue .cache/gpu-bundle/restart/nve.restart.250000 /tmp/main/
$PY -m mlff_distiller.cli export python/mlff_distiller/shipped_models/default_v2.pt --device cuda --dtype float64 -o /tmp/main/model.mliap
(cd /tmp/main && timeout $(( 575 - ($(date +%s) - T0) )) $P/bin/lmp -in in.nve_continue -nocite -var model model.mliap \
  -var plugin $P/lib/lammps-plugins/mlffplugin.so -var restart nve.restart.250000 -var steps 2000000 -var print_every 100 \
  -var restart_every 25000 > screen.txt 2>&1; echo "lmp rc $?" >> screen.txt)
tail -2 /tmp/main/energy.txt; cp /tmp/main/energy.txt $R/energy_main_callD.txt
grep -v "^\s*$" /tmp/main/screen.txt | tail -25 > $R/screen_tail_main_callD.txt
tar czf $OUT/results.tgz -C $R .
at end
