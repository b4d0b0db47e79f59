#!/usr/bin/env bash
# session 5, call A (issue 13): the shipped v2 by active learning on the GPU
set -o pipefail
export PYTHONUNBUFFERED=1
R=/tmp/res; mkdir -p $R; git log -1 --format=%H > $R/commit.txt; git status --short > $R/status.txt
T0=$(date +%s); at() { echo "=== $1 at $(( $(date +%s) - T0 )) s"; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; lscpu | grep -E "^(Model name|Thread|Core|Socket)"; } > $R/machine.txt 2>&1
cat $R/machine.txt
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
  .cache/gpu-bundle/wheels/{ase,tblite,cffi,pycparser}-*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/python
python3 -c "from mlff_distiller.distill.teacher import make_teacher; make_teacher('gfn2-xtb'); import torch; print('teacher ok', torch.cuda.get_device_name())"
at "active learning"
timeout ${AL_TIMEOUT:-540} python3 examples/default_model_v2/active_learn_v2.py --device cuda > $R/active_learn_v2.log 2>&1
echo "rc $?"
grep -v "it/s\|s/it" $R/active_learn_v2.log | tail -40 | cut -c1-300
at "packing"
cp python/mlff_distiller/shipped_models/default_v2.pt examples/default_model_v2/metrics.json $R/ 2>/dev/null
tar czf $OUT/al_workdir.tgz -C runs/default_model_v2 al
tar czf $OUT/results.tgz -C $R .
ls -la $OUT
at end
