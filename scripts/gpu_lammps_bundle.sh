#!/usr/bin/env bash
# Makes, on a machine with network, what scripts/offline_build.sh needs on a machine without
# (a GPU node, an offline cluster):
#   OUT/lammps-4Feb2025-trimmed.tar.gz  the LAMMPS sources our build compiles, about 4 MB: cmake/,
#                                       python/, src/*.cpp src/*.h, src/fmt, src/STUBS, src/Make.sh,
#                                       src/Makefile*, and the packages ML-IAP ML-SNAP PYTHON
#                                       MOLECULE EXTRA-FIX PLUGIN
#   OUT/wheels/                         wheels for the target machine's Python, installed there only
#                                       where that Python lacks them
#
#   scripts/gpu_lammps_bundle.sh [OUT]        (default OUT: .cache/gpu-bundle, which git ignores)
#
# Environment:
#   LAMMPS_SOURCE_DIR  the LAMMPS tree to trim (default: the one scripts/setup.sh unpacked,
#                      $MLFF_CACHE/src/lammps-4Feb2025)
#   TARGET_PYTHON      the target machine's Python version (default 3.12)
#   WHEELS             packages to fetch, at the versions requirements.txt pins (else the versions
#                      installed in .venv): default "cython ase"; add mpich where the target has
#                      no MPI, "pytest pluggy iniconfig" to run the tests there
# The LAMMPS sources are a build input: never commit the bundle.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$ROOT/.cache/gpu-bundle}
CACHE=${MLFF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlff-distiller}
SRC=${LAMMPS_SOURCE_DIR:-$CACHE/src/lammps-4Feb2025}
TARGET_PYTHON=${TARGET_PYTHON:-3.12}
WHEELS=${WHEELS:-cython ase}
PACKAGES="ML-IAP ML-SNAP PYTHON MOLECULE EXTRA-FIX PLUGIN"
PYTHON=${PYTHON:-python3}
[ -x "$ROOT/.venv/bin/python" ] && PYTHON=$ROOT/.venv/bin/python

die() { printf 'gpu_lammps_bundle: error: %s\n' "$*" >&2; exit 1; }

[ -f "$SRC/cmake/CMakeLists.txt" ] && [ -f "$SRC/src/version.h" ] \
  || die "no LAMMPS source tree at $SRC: run scripts/setup.sh once (it unpacks one there) or set LAMMPS_SOURCE_DIR"

trim_lammps() {
  local name tarball list
  name=$(basename "$SRC")
  tarball=$OUT/$name-trimmed.tar.gz
  list=$(mktemp)
  (
    cd "$(dirname "$SRC")"
    printf '%s\n' "$name/LICENSE" "$name/README" "$name/cmake" "$name/python" "$name/src/fmt" \
      "$name/src/STUBS" "$name/src/Make.sh"
    find "$name/src" -maxdepth 1 -type f \( -name '*.cpp' -o -name '*.h' -o -name 'Makefile*' \)
    for package in $PACKAGES; do echo "$name/src/$package"; done
  ) | sort >"$list"
  tar -czf "$tarball" -C "$(dirname "$SRC")" -T "$list"
  rm -f "$list"
  echo "$tarball ($(du -h "$tarball" | cut -f1))"
}

pinned() {  # the version requirements.txt pins for a package name, else the one installed here
  local version
  version=$(awk -F'==' -v name="$1" 'tolower($1) == tolower(name) {print $2}' "$ROOT/requirements.txt")
  [ -n "$version" ] || version=$("$PYTHON" -c 'import sys, importlib.metadata as m; print(m.version(sys.argv[1]))' "$1" 2>/dev/null || true)
  echo "$version"
}

fetch_wheels() {
  local name version
  mkdir -p "$OUT/wheels"
  for name in $WHEELS; do
    version=$(pinned "$name")
    [ -n "$version" ] || die "$name is neither pinned in requirements.txt nor installed in $PYTHON's environment"
    "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      --python-version "$TARGET_PYTHON" --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d "$OUT/wheels" "$name==$version" \
      || die "pip could not download $name==$version for Python $TARGET_PYTHON (no network to PyPI?)"
  done
  ls "$OUT/wheels"
}

mkdir -p "$OUT"
trim_lammps
fetch_wheels
echo "bundle ready in $OUT: carry it to the target and run scripts/offline_build.sh $OUT there"
