#!/usr/bin/env bash
# What the GPU machine does, in stages that fit its calls (at most 10 minutes each): build LAMMPS +
# plugin offline, run the GPU tests, time the LAMMPS cases, profile the step. Run from the
# repository root with the bundle of scripts/gpu_lammps_bundle.sh carried in .cache/gpu-bundle:
#
#   OUT=/some/folder STAGES="build tests gpu profile" bash benchmarks/gpu_session.sh
#   OUT=/some/folder STAGES="f64 largest cpu" bash benchmarks/gpu_session.sh   (same machine, later)
#
# Stages (default: all, in this order):
#   build    scripts/offline_build.sh into PREFIX (default build/gpu-session: kept between calls
#            on a warm machine, so later stages of another call find it)
#   tests    tests/plugin/test_gpu.py and the GPU tests of tests/model, tests/model/test_fused.py
#            (-> OUT/tests.log)
#   gpu      LAMMPS cases on the GPU, float32, analytic and autograd (-> OUT/lammps_md.json)
#   unfused  the gpu stage's cases without the fused Triton kernels (MLFF_TRITON=0: the eager
#            message block; -> OUT/lammps_md_unfused.json)
#   largest  the largest float32 water box that fits on the GPU
#   profile  the step's parts with the model on the GPU, 1,029 and 8,232 waters (-> OUT/coupling_*.json);
#            the mliap/aoti cases the gpu stage ran, against LAMMPS alone (-> OUT/step_profile.json)
#   f64      the GPU cases in float64
#   cpu      every case on one CPU core of the same host (CPU_JOBS cases at once, each on its core)
#   cpu-model  the model alone on one core: analytic, compiled, autograd and schnetpack's PaiNN (its
#            wheels carried in .cache/gpu-bundle/peers), then the shipped model (-> OUT/model_cpu_*.json;
#            CPU_MODELS="peer" or "shipped" runs one half: the peer half alone took 5 minutes on the
#            H100 host, compilations included)
#   scaling  the plugin on 1..16 ranks of this host's cores, 8,232 waters (-> OUT/plugin_scaling.json)
#   gpus     several GPUs: 1 rank on 1 GPU against 2 ranks on 2 GPUs, water of MULTI_SYSTEMS
#            (default about 64,000 and 200,000 atoms), each step's parts and its halo exchange
#            (-> OUT/coupling_gpus_<ranks>.json; MULTI_RANKS: the rank counts, default 1 2)
# Environment: CASE_TIMEOUT (s per LAMMPS case), TEST_TIMEOUT, TEST_ARGS, GPU_ARGS, PROFILE_METHODS,
# F64_ARGS, LARGEST_ARGS, CPU_JOBS, CPU_ARGS, CPU_MODELS, SCALING_RANKS, MULTI_*; PACK=1 leaves OUT
# holding one archive of all it wrote, session.tgz (the device tool returns at most 8 files of OUT:
# the rest, the LAMMPS outputs in OUT/stdout/ among them, would stay behind).
set -uo pipefail
OUT=${OUT:?set OUT to the folder for the results}
PREFIX=$(realpath -m "${PREFIX:-build/gpu-session}")
STAGES=${STAGES:-build tests gpu unfused largest profile f64 cpu cpu-model scaling gpus}
export PYTHONUNBUFFERED=1
# the device machine runs us as root; Open MPI's mpirun refuses that unless told
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
T0=$(date +%s)
pack() { tar czf /tmp/gpu_session.tgz -C "$OUT" . && rm -rf "${OUT:?}"/* && mv /tmp/gpu_session.tgz "$OUT/session.tgz"; }
[ "${PACK:-0}" = 1 ] && trap pack EXIT
stage() { [[ " $STAGES " == *" $1 "* ]] && echo "=== $1 at $(( $(date +%s) - T0 )) s"; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; lscpu | grep -E "^(Model name|Thread|Core|Socket|NUMA node\(s\)|L3)"; python3 -V
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'; } >"$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

if stage build; then
  JOBS=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) bash scripts/offline_build.sh .cache/gpu-bundle "$PREFIX" >"$OUT/build.log" 2>&1 \
    || { tail -30 "$OUT/build.log"; exit 1; }
fi
PY=$PREFIX/bin/python
[ -x "$PY" ] || { echo "no build in $PREFIX: run the build stage first"; exit 1; }
BENCH=("$PY" benchmarks/run.py lammps --lmp "$PREFIX/bin/lmp" --out "$OUT/lammps_md.json" --append
       --timeout "${CASE_TIMEOUT:-240}")

if stage tests; then
  timeout "${TEST_TIMEOUT:-240}" "$PY" -m pytest -q -p no:cacheprovider tests/plugin/test_gpu.py \
    tests/model/test_replay.py tests/model/test_fused.py ${TEST_ARGS:-} >"$OUT/tests.log" 2>&1
  tail -15 "$OUT/tests.log"
fi
if stage gpu; then "${BENCH[@]}" --devices gpu --dtypes float32 ${GPU_ARGS:-} | cut -c1-400; fi
if stage unfused; then
  MLFF_TRITON=0 "$PY" benchmarks/run.py lammps --lmp "$PREFIX/bin/lmp" --out "$OUT/lammps_md_unfused.json" \
    --timeout "${CASE_TIMEOUT:-240}" --devices gpu --dtypes float32 ${GPU_ARGS:-} | cut -c1-400
fi
if stage largest; then "${BENCH[@]}" --devices gpu --largest --systems none ${LARGEST_ARGS:-} | cut -c1-400; fi
if stage profile; then
  for method in ${PROFILE_METHODS:-analytic autograd}; do
    "$PY" benchmarks/run.py coupling --model real --device cuda --method $method --steps 100 \
      --systems water_343 water_2744 --out "$OUT/coupling_cuda_float32_$method.json" | cut -c1-600
  done
  aoti_inputs=(runs/bench_lammps/*_mliap_aoti_gpu_float32_analytic/in.bench)
  if [ -e "${aoti_inputs[0]}" ]; then
    "$PY" benchmarks/run.py step-profile "${aoti_inputs[@]}" --out "$OUT/step_profile.json" | cut -c1-300
  fi
fi
if stage f64; then
  "${BENCH[@]}" --devices gpu --dtypes float64 ${F64_ARGS:---systems aspirin water_1k water_8k} | cut -c1-400
fi
if stage cpu; then "${BENCH[@]}" --devices cpu --cpu-jobs "${CPU_JOBS:-8}" ${CPU_ARGS:-} | cut -c1-400; fi
if stage cpu-model; then
  for model in ${CPU_MODELS:-peer shipped}; do
    if [ "$model" = peer ]; then
      "$PY" -m pip install -q --no-index --no-deps --disable-pip-version-check --target "$PREFIX/peers" \
        .cache/gpu-bundle/peers/*.whl || echo "schnetpack's wheels did not install: its column will be missing"
      PYTHONPATH="$PREFIX/peers" "$PY" benchmarks/run.py model-cpu --model peer --systems aspirin water1k \
        --dtypes float32 -o "$OUT/model_cpu_peer.json"
    else
      "$PY" benchmarks/run.py model-cpu --model shipped --systems aspirin water1k -o "$OUT/model_cpu_shipped.json"
    fi
  done
fi
if stage scaling; then
  BIND=(); "$PREFIX/bin/mpirun" --version 2>&1 | grep -q "Open MPI" && BIND=(--mpirun-args "--bind-to core")
  "$PY" benchmarks/run.py plugin-scaling prepare "$PREFIX/scaling" --molecules 2744 --dtype float32 &&
  "$PY" benchmarks/run.py plugin-scaling run "$PREFIX/scaling" --ranks ${SCALING_RANKS:-1 2 4 8 16} "${BIND[@]}" \
    | tail -25 && cp "$PREFIX/scaling/scaling.json" "$OUT/plugin_scaling.json"
fi
if stage gpus; then
  for ranks in ${MULTI_RANKS:-1 2}; do
    timeout "${CASE_TIMEOUT:-240}" "$PREFIX/bin/mpirun" -np $ranks "$PY" benchmarks/run.py coupling --model real \
      --device cuda --steps ${MULTI_STEPS:-30} --systems ${MULTI_SYSTEMS:-water_21333 water_66667} \
      --out "$OUT/coupling_gpus_$ranks.json" | cut -c1-900
  done
fi
mkdir -p "$OUT/stdout" && for f in runs/bench_lammps/*/stdout.txt; do
  [ -e "$f" ] && cp "$f" "$OUT/stdout/$(basename "$(dirname "$f")").txt"; done
echo "=== done at $(( $(date +%s) - T0 )) s"
