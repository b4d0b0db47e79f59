#!/usr/bin/env bash
# session 5, call F (issue 13): the default model (v1) in the 192-water NVE through the plugin on
# the GPU, as long as the call allows: float64 and float32 exports side by side on the card
set -o pipefail
export PYTHONUNBUFFERED=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
R=/tmp/res; rm -rf $R; mkdir -p $R; T0=$(date +%s); at() { echo "=== $1 at $(( $(date +%s) - T0 )) s"; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; } > $R/machine.txt 2>&1
OUT=$R STAGES=build bash benchmarks/gpu_session.sh > $R/build_session.log 2>&1 || { tail $R/build_session.log; exit 1; }
P=$PWD/build/gpu-session; PY=$P/bin/python; PLUGIN=$P/lib/lammps-plugins/mlffplugin.so
at "built"
run_case() {  # name dtype
  mkdir -p /tmp/$1 && cp inputs/water/* /tmp/$1/
  $PY -m mlff_distiller.cli export default --device cuda --dtype $2 -o /tmp/$1/model.mliap > /tmp/$1/export.txt 2>&1
  (cd /tmp/$1 && timeout $(( 560 - ($(date +%s) - T0) )) $P/bin/lmp -in in.nvt_nve -nocite -var model model.mliap \
    -var plugin $PLUGIN -var steps 2000000 -var print_every 100 > screen.txt 2>&1; echo "$1 lmp rc $?" >> screen.txt)
}
run_case v1_float64 float64 &
run_case v1_float32 float32 &
wait
at "done"
for c in v1_float64 v1_float32; do
  echo "--- $c"; grep -E "Loop time|lmp rc|ERROR|captured" /tmp/$c/screen.txt | head -5; tail -1 /tmp/$c/energy.txt
  cp /tmp/$c/energy.txt $R/energy_$c.txt; cp /tmp/$c/screen.txt $R/screen_$c.txt
done
tar czf $OUT/results.tgz -C $R .
at end
