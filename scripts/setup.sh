#!/usr/bin/env bash
# Sets up everything mlff-distiller needs, idempotently:
#   .venv/                  pinned Python dependencies (requirements.txt) and this package (editable)
#   build/lammps/           LAMMPS built by the top-level CMakeLists.txt (ML-IAP + Python, MPI, PLUGIN)
#   .venv/bin/lmp           a launcher that runs that LAMMPS with the venv's Python embedded
#   .venv/bin/mpirun        MPICH from the PyPI wheel
#
# Environment:
#   LAMMPS_SOURCE_DIR   a LAMMPS source tree to build (default: Debian's LAMMPS 4 Feb 2025 source,
#                       downloaded once into $MLFF_CACHE and checked against its sha256)
#   MLFF_CACHE          download cache (default: ${XDG_CACHE_HOME:-~/.cache}/mlff-distiller)
#   JOBS                parallel build jobs (default: number of cores)
#
# A completed set-up leaves .venv/.setup-complete holding a fingerprint of its inputs; anything that
# finds that file missing or stale (the Makefile) runs this script again, so a failure half-way never
# leaves a venv that looks good.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$ROOT/.venv
BUILD=$ROOT/build/lammps
STAMP=$VENV/.setup-complete
CACHE=${MLFF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlff-distiller}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}

DEBIAN_SUITE=trixie
DEBIAN_VERSION=20250204+dfsg.1-2
DEBIAN_TARBALL=lammps_20250204+dfsg.1.orig.tar.xz
DEBIAN_SHA256=3671165bd52fad36734e0a9136c5bc5ecb225e03988f8c89aa13366a8b53b1c7
DEBIAN_TOPDIR=lammps-4Feb2025

step() { printf '==> %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
quiet() {  # run a command, show its output only if it fails
  local log; log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then tail -n 30 "$log" >&2; rm -f "$log"; return 1; fi
  rm -f "$log"
}

fingerprint() {
  {
    cat "$ROOT/requirements.txt" "$ROOT/pyproject.toml" "$ROOT/CMakeLists.txt" "$ROOT/scripts/setup.sh"
    find "$ROOT/lammps_plugin" -type f \( -name '*.cpp' -o -name '*.h' -o -name 'CMakeLists.txt' \) -print0 2>/dev/null \
      | sort -z | xargs -0 -r cat
    echo "source=${LAMMPS_SOURCE_DIR:-debian:$DEBIAN_SHA256}"
  } | sha256sum | cut -d' ' -f1
}

check_tools() {
  command -v python3 >/dev/null || die "python3 not found: install Python 3.10 or newer (apt-get install python3 python3-venv)"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "python3 is $(python3 -V 2>&1); mlff-distiller needs 3.10 or newer"
  python3 -c 'import venv, ensurepip' 2>/dev/null || die "python3 cannot create virtual environments: apt-get install python3-venv"
  python3 -c 'import sysconfig, sys; sys.exit(not sysconfig.get_config_var("Py_ENABLE_SHARED"))' \
    || die "this python3 has no shared libpython, which LAMMPS's PYTHON package links to: use a Python built with --enable-shared (Debian's python3-dev has one)"
  command -v c++ >/dev/null || command -v g++ >/dev/null || die "no C++ compiler found: apt-get install g++"
  command -v cmake >/dev/null || die "cmake not found: apt-get install cmake (3.16 or newer)"
  command -v make >/dev/null || die "make not found: apt-get install make"
}

make_venv() {
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c '' 2>/dev/null; then
    step "creating $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "could not create $VENV (python3 -m venv failed): apt-get install python3-venv"
  fi
  step "installing pinned Python dependencies (requirements.txt)"
  quiet "$VENV/bin/python" -m pip install --disable-pip-version-check -r "$ROOT/requirements.txt" \
    || die "pip could not install requirements.txt: check the network to PyPI (pip's output is above)"
  "$VENV/bin/python" -c 'import Cython' 2>/dev/null \
    || die "Cython is missing from $VENV after pip install; ML-IAP's Python coupling needs it: $VENV/bin/pip install cython"
  [ -x "$VENV/bin/mpicxx" ] || die "the mpich wheel did not provide $VENV/bin/mpicxx: reinstall it with $VENV/bin/pip install --force-reinstall mpich"
}

debian_source() {
  local dir=$CACHE/src tarball=$CACHE/src/$DEBIAN_TARBALL
  if [ -f "$dir/$DEBIAN_TOPDIR/.extracted" ]; then echo "$dir/$DEBIAN_TOPDIR"; return; fi
  mkdir -p "$dir" "$CACHE/apt/lists/partial"
  if [ ! -f "$tarball" ] || ! echo "$DEBIAN_SHA256  $tarball" | sha256sum -c --status; then
    step "downloading Debian's LAMMPS source ($DEBIAN_SUITE, $DEBIAN_VERSION, 132 MB) into $dir" >&2
    command -v apt-get >/dev/null || die "no LAMMPS_SOURCE_DIR given and apt-get is not available to fetch Debian's LAMMPS source: set LAMMPS_SOURCE_DIR=/path/to/lammps"
    # A private apt configuration (deb-src entry for the mirror this machine already uses), so the
    # system's sources are left alone.
    local mirror
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt to fetch LAMMPS source from: set LAMMPS_SOURCE_DIR=/path/to/lammps"
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $DEBIAN_SUITE main" >"$CACHE/apt/sources.list"
    local apt=(apt-get -q -o Dir::Etc::sourcelist="$CACHE/apt/sources.list" -o Dir::Etc::sourceparts=-
               -o Dir::State::Lists="$CACHE/apt/lists" -o Debug::NoLocking=1)
    quiet "${apt[@]}" update \
      || die "could not reach Debian's package index (no network?): set LAMMPS_SOURCE_DIR=/path/to/lammps to build an existing LAMMPS tree"
    # apt-get exits non-zero here because the .dsc file is gone from the mirror; the orig
    # tarball is all the build needs, and its checksum below is what decides.
    (cd "$dir" && "${apt[@]}" source --download-only "lammps=$DEBIAN_VERSION" >/dev/null 2>&1) || true
    [ -f "$tarball" ] || die "could not download $DEBIAN_TARBALL from Debian ($DEBIAN_SUITE): check the network, or set LAMMPS_SOURCE_DIR=/path/to/lammps"
    echo "$DEBIAN_SHA256  $tarball" | sha256sum -c --status || {
      rm -f "$tarball"
      die "$DEBIAN_TARBALL failed its sha256 check (expected $DEBIAN_SHA256); the damaged file was removed, run the set-up again"
    }
  fi
  step "unpacking $DEBIAN_TARBALL" >&2
  rm -rf "${dir:?}/$DEBIAN_TOPDIR"
  tar -xJf "$tarball" -C "$dir" || die "could not unpack $tarball"
  touch "$dir/$DEBIAN_TOPDIR/.extracted"
  echo "$dir/$DEBIAN_TOPDIR"
}

lammps_source() {
  if [ -n "${LAMMPS_SOURCE_DIR:-}" ]; then
    [ -f "$LAMMPS_SOURCE_DIR/cmake/CMakeLists.txt" ] && [ -f "$LAMMPS_SOURCE_DIR/src/version.h" ] \
      || die "LAMMPS_SOURCE_DIR=$LAMMPS_SOURCE_DIR is not a LAMMPS source tree (no cmake/CMakeLists.txt or src/version.h): point it at the top folder of a LAMMPS checkout or release"
    [ -f "$LAMMPS_SOURCE_DIR/src/ML-IAP/mliap_unified.cpp" ] \
      || die "the LAMMPS tree at $LAMMPS_SOURCE_DIR has no ML-IAP unified interface (src/ML-IAP/mliap_unified.cpp): use LAMMPS 2023 or newer"
    (cd "$LAMMPS_SOURCE_DIR" && pwd)
  else
    debian_source
  fi
}

build_lammps() {
  local src=$1
  step "configuring LAMMPS from $src in $BUILD"
  mkdir -p "$BUILD"
  quiet cmake -S "$ROOT" -B "$BUILD" -D LAMMPS_SOURCE_DIR="$src" \
    -D Python_EXECUTABLE="$VENV/bin/python" \
    -D CMAKE_C_COMPILER="$VENV/bin/mpicc" -D CMAKE_CXX_COMPILER="$VENV/bin/mpicxx" \
    || die "configuring LAMMPS failed (cmake's output is above)"
  step "building LAMMPS with $JOBS jobs (minutes the first time, seconds when nothing changed)"
  quiet cmake --build "$BUILD" -j "$JOBS" || die "building LAMMPS failed (the compiler's output is above)"
}

install_lammps() {
  local src=$1
  step "installing the lammps Python module, lmp and the plugin into $VENV"
  rm -rf "$BUILD/wheel" && mkdir -p "$BUILD/wheel"
  (cd "$BUILD" && quiet "$VENV/bin/python" "$src/python/install.py" -n -p "$src/python/lammps" \
      -l "$BUILD/liblammps.so" -w "$BUILD/wheel" -v "$src/src/version.h") \
    || die "building the lammps Python wheel failed"
  quiet "$VENV/bin/python" -m pip install --no-deps --force-reinstall "$BUILD"/wheel/lammps-*.whl \
    || die "installing the lammps Python wheel failed"
  mkdir -p "$VENV/libexec"
  install -m 755 "$BUILD/lmp" "$VENV/libexec/lmp"
  # LAMMPS embeds Python without telling it which interpreter it belongs to; Python then looks
  # for `python3` on PATH to find its prefix. Putting the venv first makes the embedded Python
  # the venv's, whether or not the user activated it.
  cat >"$VENV/bin/lmp" <<EOF
#!/bin/sh
# LAMMPS with the Python of this venv embedded (written by scripts/setup.sh)
PATH="$VENV/bin:\$PATH" exec "$VENV/libexec/lmp" "\$@"
EOF
  chmod 755 "$VENV/bin/lmp"
  local plugin
  for plugin in "$BUILD"/lammps_plugin/*plugin.so; do
    [ -e "$plugin" ] || continue
    mkdir -p "$VENV/lib/lammps-plugins"
    install -m 755 "$plugin" "$VENV/lib/lammps-plugins/"
  done
}

install_package() {
  step "installing mlff_distiller (editable) into $VENV"
  quiet "$VENV/bin/python" -m pip install --no-deps --no-build-isolation -e "$ROOT" \
    || die "installing the mlff_distiller package failed"
}

verify() {
  step "checking the installed LAMMPS"
  local help
  help=$("$VENV/bin/lmp" -h 2>&1) || die "$VENV/bin/lmp does not run"
  for pkg in ML-IAP PYTHON PLUGIN; do
    grep -qw -- "$pkg" <<<"$help" || die "the LAMMPS build lacks the $pkg package: remove $BUILD and run the set-up again"
  done
  "$VENV/bin/python" - <<'EOF' || die "this LAMMPS cannot run 'pair_style mliap unified' from Python (ML-IAP was built without its Python coupling): remove build/lammps and run the set-up again"
import lammps, lammps.mliap
lmp = lammps.lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
assert lmp.has_package("ML-IAP") and lmp.has_package("PYTHON")
lammps.mliap.activate_mliappy(lmp)
lmp.close()
EOF
}

main() {
  local want
  want=$(fingerprint)
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/lmp" ]; then
    step "set-up is up to date ($VENV)"
    return 0
  fi
  rm -f "$STAMP"
  check_tools
  make_venv
  local src
  src=$(lammps_source)
  build_lammps "$src"
  install_lammps "$src"
  install_package
  verify
  echo "$want" >"$STAMP"
  step "set-up complete: $VENV/bin/lmp, $VENV/bin/mpirun, $VENV/bin/mlff-distiller"
}

main "$@"
