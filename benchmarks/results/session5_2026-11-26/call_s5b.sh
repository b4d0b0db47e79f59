#!/usr/bin/env bash
# session 5, call B (issue 13): finish the active learning of call A (resumed), evaluate and write v2;
# meanwhile build LAMMPS + plugin; then 192 waters NVE through the plugin on the GPU with v2, float64
set -o pipefail
export PYTHONUNBUFFERED=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
R=/tmp/res; rm -rf $R; mkdir -p $R; git log -1 --format=%H > $R/commit.txt; git status --short > $R/status.txt
T0=$(date +%s); at() { echo "=== $1 at $(( $(date +%s) - T0 )) s"; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
  .cache/gpu-bundle/wheels/{ase,tblite,cffi,pycparser}-*.whl || exit 1
(OUT=$R STAGES=build bash benchmarks/gpu_session.sh > $R/build_session.log 2>&1; echo "build rc $?" >> $R/build_session.log) &
BUILD=$!
at "active learning (resumed)"
PYTHONPATH=/tmp/site:$PWD/python timeout 330 python3 examples/default_model_v2/active_learn_v2.py --device cuda > $R/active_learn_v2_resumed.log 2>&1
echo "al rc $?"
grep -v "it/s\|s/it" $R/active_learn_v2_resumed.log | grep -v "^\s*$" | tail -60 | cut -c1-250
cp python/mlff_distiller/shipped_models/default_v2.pt examples/default_model_v2/metrics.json $R/ 2>/dev/null
tar czf $OUT/al_final.tgz -C runs/default_model_v2/al final settings.json
wait $BUILD; tail -2 $R/build_session.log
at "water NVE"
P=$PWD/build/gpu-session; PY=$P/bin/python
mkdir -p /tmp/nve && cp inputs/water/* /tmp/nve/
$PY -m mlff_distiller.cli export python/mlff_distiller/shipped_models/default_v2.pt --device cuda --dtype float64 -o /tmp/nve/v2.mliap
cd /tmp/nve
timeout $(( 585 - ($(date +%s) - T0) )) $P/bin/lmp -in in.nvt_nve -nocite -var model v2.mliap \
  -var plugin $P/lib/lammps-plugins/mlffplugin.so -var steps 2000000 -var print_every 100 -var restart_every 50000 > screen.txt 2>&1
echo "lmp rc $?"
grep -E "Loop time|captured|mlff-distiller" screen.txt | head; tail -3 energy.txt; wc -l energy.txt
ls nve.restart.* 2>/dev/null | tail -2
LAST=$(ls -v nve.restart.* 2>/dev/null | tail -1); [ -n "$LAST" ] && cp $LAST $OUT/
cp screen.txt energy.txt log.lammps $R/ 2>/dev/null
tar czf $OUT/results.tgz -C $R .
at end
