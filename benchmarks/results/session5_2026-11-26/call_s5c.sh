#!/usr/bin/env bash
# session 5, call C (issue 13): the water NVE with v2 goes on from call B's restart (step 150,000);
# beside it, from the same state for 20 ps: v2 at 0.25 fs and v1 at 0.5 fs (is the drift the model's
# or the integrator's?); and the single-GPU tests
set -o pipefail
export PYTHONUNBUFFERED=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
R=/tmp/res; rm -rf $R; mkdir -p $R; T0=$(date +%s); at() { echo "=== $1 at $(( $(date +%s) - T0 )) s"; }
OUT=$R STAGES=build bash benchmarks/gpu_session.sh > $R/build_session.log 2>&1 || { tail $R/build_session.log; exit 1; }
P=$PWD/build/gpu-session; PY=$P/bin/python; PLUGIN=$P/lib/lammps-plugins/mlffplugin.so
at "built"
run_case() {  # name model timestep steps print_every restart_every
  mkdir -p /tmp/$1 && cp inputs/water/in.nve_continue .cache/gpu-bundle/restart/nve.restart.150000 /tmp/$1/
  $PY -m mlff_distiller.cli export $2 --device cuda --dtype float64 -o /tmp/$1/model.mliap > /tmp/$1/export.txt 2>&1
  (cd /tmp/$1 && timeout $(( 570 - ($(date +%s) - T0) )) $P/bin/lmp -in in.nve_continue -nocite -var model model.mliap \
    -var plugin $PLUGIN -var restart nve.restart.150000 -var timestep $3 -var steps $4 -var print_every $5 \
    -var restart_every $6 > screen.txt 2>&1; echo "$1 lmp rc $?" >> screen.txt)
}
run_case main python/mlff_distiller/shipped_models/default_v2.pt 0.0005 2000000 100 25000 &
run_case v2_quarter_fs python/mlff_distiller/shipped_models/default_v2.pt 0.00025 80000 200 0 &
run_case v1_half_fs python/mlff_distiller/shipped_models/default.pt 0.0005 40000 100 0 &
at "tests"
timeout 330 $PY -m pytest -q -p no:cacheprovider tests/plugin/test_gpu.py tests/model/test_replay.py \
  tests/model/test_io_and_calculator.py tests/distill/test_device.py -rs > $R/tests_gpu.log 2>&1
tail -15 $R/tests_gpu.log
wait
at "cases done"
for c in main v2_quarter_fs v1_half_fs; do
  echo "--- $c"; grep -E "Loop time|lmp rc|ERROR" /tmp/$c/screen.txt; tail -1 /tmp/$c/energy.txt; wc -l < /tmp/$c/energy.txt
  cp /tmp/$c/energy.txt $R/energy_$c.txt; grep -v "^\s*$" /tmp/$c/screen.txt | tail -25 > $R/screen_tail_$c.txt
done
LAST=$(ls -v /tmp/main/nve.restart.* 2>/dev/null | tail -1); [ -n "$LAST" ] && cp $LAST $OUT/
tar czf $OUT/results.tgz -C $R .
at end
