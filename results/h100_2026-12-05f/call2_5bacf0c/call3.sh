#!/usr/bin/env bash
set -o pipefail
export PYTHONUNBUFFERED=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
R=$OUT; T0=$(date +%s)
OUT=/tmp STAGES=build bash benchmarks/gpu_session.sh > /dev/null 2>&1; echo "build rc $? at $(( $(date +%s) - T0 )) s"
PY=$PWD/build/gpu-session/bin/python
timeout $(( ${LIMIT:-380} - $(date +%s) + T0 )) $PY -m pytest -v -p no:cacheprovider tests/plugin/test_gpu.py -k "stock or md_on_the_gpu or graphs" > $R/tests_gpu_rest.log 2>&1; echo "rc $?"
grep -E "PASS|FAIL|SKIP|ERROR|passed|failed" $R/tests_gpu_rest.log | cut -c1-150 | tail -20
