#!/usr/bin/env bash
# Builds LAMMPS with our packages and the mlff-distiller plugin on a machine WITHOUT network (a GPU
# node, an offline cluster), from a bundle that scripts/gpu_lammps_bundle.sh made beforehand on a
# machine with network. It uses this machine's own python3 (and so its CUDA torch), compilers and
# MPI, and installs nothing outside PREFIX:
#
#   scripts/offline_build.sh BUNDLE [PREFIX]      (default PREFIX: build/offline)
#
# PREFIX then holds an environment laid out like the .venv of scripts/setup.sh:
#   PREFIX/bin/python           this machine's python3, seeing its own packages (torch, numpy, ...)
#   PREFIX/bin/lmp              LAMMPS with that Python embedded (finds torch and mlff_distiller)
#   PREFIX/bin/mpirun           this machine's mpirun (or the bundle's mpich wheel's)
#   PREFIX/bin/mlff-distiller   the package, installed editable from this checkout
#   PREFIX/lib/lammps-plugins/  the plugin (pair styles mliap/halo, mliap/aoti)
#   PREFIX/lib/mlff-distiller/  the student's fused CPU kernels (libmlff_fused.so)
# so that `PREFIX/bin/mlff-distiller md inputs/aspirin` and `PREFIX/bin/python -m pytest tests` run.
#
# Environment: PYTHON (default python3), JOBS (parallel build jobs, default: all cores)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUNDLE=${1:?usage: scripts/offline_build.sh BUNDLE [PREFIX] (BUNDLE: made by scripts/gpu_lammps_bundle.sh)}
PREFIX=${2:-$ROOT/build/offline}
PYTHON=${PYTHON:-python3}
JOBS=${JOBS:-$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || echo 2)}  # nproc obeys OMP_NUM_THREADS
BUNDLE=$(cd "$BUNDLE" && pwd)
mkdir -p "$PREFIX" && PREFIX=$(cd "$PREFIX" && pwd)
ENV_PY=$PREFIX/bin/python

step() { printf '==> %s\n' "$*"; }
die() { printf 'offline_build: error: %s\n' "$*" >&2; exit 1; }

check_tools() {
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found: set PYTHON to the python3 that has torch"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "$PYTHON is older than 3.10"
  "$PYTHON" -c 'import torch, numpy' 2>/dev/null || die "$PYTHON cannot import torch and numpy: set PYTHON to the python3 that has them"
  "$PYTHON" -c 'import sysconfig, sys; sys.exit(not sysconfig.get_config_var("Py_ENABLE_SHARED"))' \
    || die "$PYTHON has no shared libpython, which LAMMPS's PYTHON package links to"
  command -v cmake >/dev/null || die "cmake not found"
  command -v c++ >/dev/null || command -v g++ >/dev/null || die "no C++ compiler found"
  ls "$BUNDLE"/lammps-*-trimmed.tar.gz >/dev/null 2>&1 || die "no lammps-*-trimmed.tar.gz in $BUNDLE: make the bundle with scripts/gpu_lammps_bundle.sh"
}

make_env() {  # a venv over this python3 that also sees the packages of the environment it lives in
  step "creating $PREFIX over $("$PYTHON" -c 'import sys; print(sys.executable)')"
  "$PYTHON" -m venv --without-pip --system-site-packages "$PREFIX"
  local site
  site=$("$ENV_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  "$PYTHON" -c 'import site; print("\n".join(site.getsitepackages()))' >"$site/_base_environment.pth"
  "$ENV_PY" -m pip --version >/dev/null 2>&1 || die "$PYTHON has no pip, needed to install into $PREFIX"
}

installed() { "$ENV_PY" -c 'import sys, importlib.metadata as m; m.version(sys.argv[1])' "$1" 2>/dev/null; }

install_missing_wheels() {  # a bundled wheel only where this Python lacks the package
  local wheel name
  for wheel in "$BUNDLE"/wheels/*.whl; do
    [ -e "$wheel" ] || continue
    name=$(basename "$wheel" | cut -d- -f1)
    if [ "$name" = mpich ] && command -v mpicxx >/dev/null; then continue; fi
    installed "$name" && continue
    step "installing $name from the bundle"
    "$ENV_PY" -m pip install -q --no-index --no-deps --disable-pip-version-check "$wheel" \
      || die "could not install $wheel"
  done
  installed cython || "$ENV_PY" -c 'import Cython' 2>/dev/null \
    || die "Cython is missing: make the bundle with WHEELS containing cython"
}

mpi_compilers() {  # this machine's MPI, else the bundle's mpich wheel's
  if [ -x "$PREFIX/bin/mpicxx" ]; then echo "$PREFIX/bin/mpicc $PREFIX/bin/mpicxx"; return; fi
  command -v mpicxx >/dev/null && command -v mpicc >/dev/null \
    || die "no MPI compilers (mpicc, mpicxx): install an MPI, or add mpich to the bundle's WHEELS"
  echo "$(command -v mpicc) $(command -v mpicxx)"
}

unpack_lammps() {  # sets SRC
  step "unpacking $(basename "$BUNDLE"/lammps-*-trimmed.tar.gz)"
  rm -rf "$PREFIX/src" && mkdir -p "$PREFIX/src"
  tar -xzf "$BUNDLE"/lammps-*-trimmed.tar.gz -C "$PREFIX/src"
  SRC=$(ls -d "$PREFIX"/src/lammps-*)
}

build_lammps() {
  local mpi compilers generator=()
  mpi=$(mpi_compilers)
  read -r -a compilers <<<"$mpi"
  cat >"$PREFIX/bin/cythonize" <<EOF
#!/bin/sh
exec "$ENV_PY" -m Cython.Build.Cythonize "\$@"
EOF
  chmod 755 "$PREFIX/bin/cythonize"
  command -v ninja >/dev/null && generator=(-G Ninja)
  step "configuring LAMMPS ($SRC) with ${compilers[1]}"
  cmake -S "$ROOT" -B "$PREFIX/build" "${generator[@]}" -D LAMMPS_SOURCE_DIR="$SRC" \
    -D Python_EXECUTABLE="$ENV_PY" -D Cythonize_EXECUTABLE="$PREFIX/bin/cythonize" \
    -D CMAKE_C_COMPILER="${compilers[0]}" -D CMAKE_CXX_COMPILER="${compilers[1]}" >"$PREFIX/configure.log" 2>&1 \
    || { tail -n 30 "$PREFIX/configure.log" >&2; die "configuring LAMMPS failed (log: $PREFIX/configure.log)"; }
  step "building LAMMPS and the plugin with $JOBS jobs"
  cmake --build "$PREFIX/build" -j "$JOBS" >"$PREFIX/build.log" 2>&1 \
    || { tail -n 30 "$PREFIX/build.log" >&2; die "building LAMMPS failed (log: $PREFIX/build.log)"; }
}

install_lammps() {  # what the lammps wheel holds, copied in: building that wheel needs the network
  local site
  step "installing the lammps Python module, lmp, mpirun and the plugin into $PREFIX"
  site=$("$ENV_PY" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
  rm -rf "$site/lammps" && cp -r "$SRC/python/lammps" "$site/lammps"
  cp "$PREFIX/build/liblammps.so"* "$site/lammps/"
  mkdir -p "$PREFIX/libexec" "$PREFIX/lib/lammps-plugins"
  install -m 755 "$PREFIX/build/lmp" "$PREFIX/libexec/lmp"
  # the embedded Python finds its prefix through the python3 on PATH (as in scripts/setup.sh)
  cat >"$PREFIX/bin/lmp" <<EOF
#!/bin/sh
# LAMMPS with the Python of $PREFIX embedded (written by scripts/offline_build.sh)
PATH="$PREFIX/bin:\$PATH" exec "$PREFIX/libexec/lmp" "\$@"
EOF
  chmod 755 "$PREFIX/bin/lmp"
  [ -x "$PREFIX/bin/mpirun" ] || ln -sf "$(command -v mpirun)" "$PREFIX/bin/mpirun"
  install -m 755 "$PREFIX"/build/lammps_plugin/*plugin.so "$PREFIX/lib/lammps-plugins/"
  install -D -m 755 "$PREFIX/build/fused/libmlff_fused.so" "$PREFIX/lib/mlff-distiller/libmlff_fused.so"
}

install_package() {
  step "installing mlff_distiller (editable) into $PREFIX"
  "$ENV_PY" -m pip install -q --no-index --no-deps --no-build-isolation --disable-pip-version-check -e "$ROOT" \
    || die "installing the mlff_distiller package failed (its setuptools must be >= 64)"
}

verify() {
  step "checking the installed LAMMPS"
  "$ENV_PY" "$ROOT/scripts/check_lammps.py" "$PREFIX/bin/lmp" || die "the LAMMPS build is incomplete (above)"
  "$ENV_PY" -c 'import torch; print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")'
}

main() {
  check_tools
  make_env
  install_missing_wheels
  unpack_lammps
  build_lammps
  install_lammps
  install_package
  verify
  step "done: $PREFIX/bin/lmp, $PREFIX/bin/mlff-distiller, $PREFIX/bin/python"
}

main "$@"
