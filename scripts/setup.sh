#!/usr/bin/env bash
# Sets up everything mlff-distiller needs, idempotently:
#   .venv/                  pinned Python dependencies (requirements.txt) and this package (editable)
#   build/lammps/           LAMMPS built by the top-level CMakeLists.txt (ML-IAP + Python, MPI, PLUGIN)
#   .venv/bin/lmp           a launcher that runs that LAMMPS with the venv's Python embedded
#   .venv/bin/mpirun        MPICH from the PyPI wheel
#   .venv/lib/mlff-distiller/libmlff_fused.so   the student's fused CPU kernels
#
# Environment:
#   LAMMPS_SOURCE_DIR   the LAMMPS source to build: a LAMMPS source tree, or the name of one of Debian's
#                       LAMMPS source packages, `trixie` (LAMMPS 4 Feb 2025, the default) or `sid`
#                       (LAMMPS 4 Jul 2026), downloaded once into $MLFF_CACHE and checked against its
#                       pinned sha256. Another choice than trixie is remembered in
#                       build/lammps/.lammps-source: later runs without LAMMPS_SOURCE_DIR build the
#                       same source again, until LAMMPS_SOURCE_DIR=trixie goes back to the default.
#   MLFF_CACHE          download cache (default: ${XDG_CACHE_HOME:-~/.cache}/mlff-distiller)
#   MLFF_VENV           the venv to set up (default: .venv)
#   MLFF_BUILD          the LAMMPS build folder (default: build/lammps); scripts/compat.sh sets both
#   JOBS                parallel build jobs (default: number of cores)
#   MLFF_TORCH          `system`: use the torch of the python3 that runs the set-up (a CUDA build on
#                       a GPU machine) instead of requirements.txt's CPU pin; the venv then sees that
#                       Python's packages. Remembered by the venv (include-system-site-packages):
#                       MLFF_TORCH=pinned goes back.
#
# `scripts/setup.sh --source-dir` prints the LAMMPS source tree that would be built (fetching it if
# needed) and does nothing else.
#
# A completed set-up leaves .venv/.setup-complete holding a fingerprint of its inputs; anything that
# finds that file missing or stale (the Makefile) runs this script again, so a failure half-way never
# leaves a venv that looks good.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=$(realpath -m "${MLFF_VENV:-$ROOT/.venv}")
BUILD=$(realpath -m "${MLFF_BUILD:-$ROOT/build/lammps}")
STAMP=$VENV/.setup-complete
REMEMBERED=$BUILD/.lammps-source
CACHE=${MLFF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mlff-distiller}
JOBS=${JOBS:-$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc 2>/dev/null || echo 2)}  # nproc obeys OMP_NUM_THREADS

# Debian's LAMMPS source packages that LAMMPS_SOURCE_DIR can name. Per name (= Debian suite): the
# package version, its orig tarball, the tarball's sha256 (as `apt-cache showsrc lammps` lists it),
# its size in MB, and the LAMMPS version (without its spaces it names the unpacked tree in $CACHE/src).
debian_release() {
  case $1 in
    trixie) echo 20250204+dfsg.1-2 lammps_20250204+dfsg.1.orig.tar.xz \
                 3671165bd52fad36734e0a9136c5bc5ecb225e03988f8c89aa13366a8b53b1c7 132 4 Feb 2025 ;;
    sid)    echo 20260704+dfsg-2 lammps_20260704+dfsg.orig.tar.gz \
                 cddbc45a047416bd48a4a0b87f24a5b61b3446982b74d18cafe619c22b17eb62 214 4 Jul 2026 ;;
    *) return 1 ;;
  esac
}

step() { printf '==> %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
quiet() {  # run a command, show its output only if it fails
  local log; log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then tail -n 30 "$log" >&2; rm -f "$log"; return 1; fi
  rm -f "$log"
}

fingerprint() {
  {
    cat "$ROOT/requirements.txt" "$ROOT/pyproject.toml" "$ROOT/CMakeLists.txt" "$ROOT/scripts/setup.sh" \
        "$ROOT/scripts/check_lammps.py"
    find "$ROOT/lammps_plugin" "$ROOT/cmake" "$ROOT/python/mlff_distiller/model/fused" -type f \
        \( -name '*.cpp' -o -name '*.h' -o -name '*.cmake' -o -name 'CMakeLists.txt' \) -print0 2>/dev/null \
      | sort -z | xargs -0 -r cat
    echo "source=$SOURCE torch=$TORCH"
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

choose_torch() {  # TORCH: pinned (requirements.txt) or system; MLFF_TORCH, else what the venv has
  TORCH=${MLFF_TORCH:-}
  if [ -z "$TORCH" ]; then
    TORCH=pinned
    grep -qs '^include-system-site-packages = true' "$VENV/pyvenv.cfg" && TORCH=system
  fi
  case $TORCH in
    pinned | system) ;;
    *) die "MLFF_TORCH=$TORCH: use system (the torch of python3) or pinned (requirements.txt)" ;;
  esac
}

make_venv() {
  local flags=() requirements=$ROOT/requirements.txt
  if [ "$TORCH" = system ]; then
    python3 -c 'import torch' 2>/dev/null \
      || die "MLFF_TORCH=system but $(command -v python3) cannot import torch: install torch for it, or leave MLFF_TORCH unset"
    flags=(--system-site-packages)
    requirements=$(mktemp)
    grep -v '^torch==' "$ROOT/requirements.txt" >"$requirements"
  fi
  local sees_system=pinned
  grep -qs '^include-system-site-packages = true' "$VENV/pyvenv.cfg" && sees_system=system
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c '' 2>/dev/null || [ "$sees_system" != "$TORCH" ]; then
    step "creating $VENV (torch: $TORCH)"
    rm -rf "$VENV"
    python3 -m venv "${flags[@]}" "$VENV" || die "could not create $VENV (python3 -m venv failed): apt-get install python3-venv"
  fi
  step "installing pinned Python dependencies (requirements.txt${flags:+, torch from $(command -v python3)})"
  quiet "$VENV/bin/python" -m pip install --disable-pip-version-check -r "$requirements" \
    || die "pip could not install requirements.txt: check the network to PyPI (pip's output is above)"
  "$VENV/bin/python" -c 'import Cython' 2>/dev/null \
    || die "Cython is missing from $VENV after pip install; ML-IAP's Python coupling needs it: $VENV/bin/pip install cython"
  [ -x "$VENV/bin/mpicxx" ] || die "the mpich wheel did not provide $VENV/bin/mpicxx: reinstall it with $VENV/bin/pip install --force-reinstall mpich"
}

debian_source() {
  local name=$1 version tarball sha256 mb lammps_version
  read -r version tarball sha256 mb lammps_version <<<"$(debian_release "$name")"
  local dir=$CACHE/src
  local tree=$dir/lammps-${lammps_version// /} file=$dir/$tarball
  if [ -f "$tree/.extracted" ]; then echo "$tree"; return; fi
  mkdir -p "$dir" "$CACHE/apt/lists/partial"
  if [ ! -f "$file" ] || ! echo "$sha256  $file" | sha256sum -c --status; then
    step "downloading Debian's LAMMPS source ($name, lammps=$version, $mb MB) into $dir" >&2
    command -v apt-get >/dev/null || die "apt-get is not available to fetch Debian's LAMMPS source: set LAMMPS_SOURCE_DIR=/path/to/lammps"
    # A private apt configuration (deb-src entry for the mirror this machine already uses), so the
    # system's sources are left alone.
    local mirror
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt to fetch LAMMPS source from: set LAMMPS_SOURCE_DIR=/path/to/lammps"
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $name main" >"$CACHE/apt/sources.list"
    local apt=(apt-get -q -o Dir::Etc::sourcelist="$CACHE/apt/sources.list" -o Dir::Etc::sourceparts=-
               -o Dir::State::Lists="$CACHE/apt/lists" -o Debug::NoLocking=1)
    quiet "${apt[@]}" update \
      || die "could not reach Debian's package index (no network?): set LAMMPS_SOURCE_DIR=/path/to/lammps to build an existing LAMMPS tree"
    # apt-get exits non-zero here because the .dsc file is gone from the mirror; the orig
    # tarball is all the build needs, and its checksum below is what decides.
    (cd "$dir" && "${apt[@]}" source --download-only "lammps=$version" >/dev/null 2>&1) || true
    [ -f "$file" ] || die "could not download $tarball (lammps=$version) from Debian $name: check the network; if Debian no longer offers that version, pin the current one in debian_release of scripts/setup.sh, or set LAMMPS_SOURCE_DIR=/path/to/lammps"
    echo "$sha256  $file" | sha256sum -c --status || {
      rm -f "$file"
      die "$tarball failed its sha256 check (expected $sha256); the damaged file was removed, run the set-up again"
    }
  fi
  step "unpacking $tarball" >&2
  rm -rf "$tree" "$tree.partial"
  mkdir -p "$tree.partial"
  tar -xf "$file" -C "$tree.partial" || die "could not unpack $file (full disk?): free some space and run the set-up again"
  # trixie's tarball holds one top folder (lammps-4Feb2025/), sid's holds the tree itself
  local top=("$tree.partial"/*)
  if [ ${#top[@]} -eq 1 ] && [ -d "${top[0]}" ]; then
    mv "${top[0]}" "$tree" && rmdir "$tree.partial"
  else
    mv "$tree.partial" "$tree"
  fi
  touch "$tree/.extracted"
  echo "$tree"
}

# Which LAMMPS source this set-up builds: LAMMPS_SOURCE_DIR if given, else the one remembered from
# the last set-up of $BUILD, else trixie. Sets SOURCE (trixie, sid or an absolute path) and
# SOURCE_FROM (where that choice came from, for messages).
choose_source() {
  if [ -n "${LAMMPS_SOURCE_DIR:-}" ]; then
    SOURCE_FROM="LAMMPS_SOURCE_DIR"
    if debian_release "$LAMMPS_SOURCE_DIR" >/dev/null; then
      SOURCE=$LAMMPS_SOURCE_DIR
    else
      [ -d "$LAMMPS_SOURCE_DIR" ] \
        || die "LAMMPS_SOURCE_DIR=$LAMMPS_SOURCE_DIR is not a folder: give a LAMMPS source tree, or trixie (Debian's LAMMPS 4 Feb 2025, the default) or sid (Debian's LAMMPS 4 Jul 2026)"
      SOURCE=$(cd "$LAMMPS_SOURCE_DIR" && pwd)
    fi
  elif [ -s "$REMEMBERED" ]; then
    SOURCE=$(cat "$REMEMBERED")
    SOURCE_FROM="remembered in $REMEMBERED; LAMMPS_SOURCE_DIR=trixie goes back to the default"
  else
    SOURCE=trixie
    SOURCE_FROM="the default; LAMMPS_SOURCE_DIR picks another"
  fi
}

describe_source() {
  local version tarball sha256 mb lammps_version
  if read -r version tarball sha256 mb lammps_version < <(debian_release "$SOURCE"); then
    echo "LAMMPS $lammps_version, Debian $SOURCE's lammps=$version"
  else
    echo "the LAMMPS tree at $SOURCE"
  fi
}

lammps_source() {
  if debian_release "$SOURCE" >/dev/null; then
    debian_source "$SOURCE"
  else
    [ -f "$SOURCE/cmake/CMakeLists.txt" ] && [ -f "$SOURCE/src/version.h" ] \
      || die "$SOURCE ($SOURCE_FROM) is not a LAMMPS source tree (no cmake/CMakeLists.txt or src/version.h): set LAMMPS_SOURCE_DIR to the top folder of a LAMMPS checkout or release, or to trixie for the default"
    [ -f "$SOURCE/src/ML-IAP/mliap_unified.cpp" ] \
      || die "the LAMMPS tree at $SOURCE has no ML-IAP unified interface (src/ML-IAP/mliap_unified.cpp): use LAMMPS 2023 or newer"
    echo "$SOURCE"
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
  # where mlff_distiller.model.fused and the plugin look for it
  install -D -m 755 "$BUILD/fused/libmlff_fused.so" "$VENV/lib/mlff-distiller/libmlff_fused.so"
}

install_package() {
  step "installing mlff_distiller (editable) into $VENV"
  quiet "$VENV/bin/python" -m pip install --no-deps --no-build-isolation -e "$ROOT" \
    || die "installing the mlff_distiller package failed"
}

verify() {
  step "checking the installed LAMMPS"
  "$VENV/bin/python" "$ROOT/scripts/check_lammps.py" "$VENV/bin/lmp" \
    || die "the LAMMPS build is incomplete (above): remove $BUILD and run the set-up again"
}

main() {
  choose_source
  choose_torch
  if [ "${1:-}" = --source-dir ]; then lammps_source; return; fi
  step "LAMMPS source: $(describe_source) ($SOURCE_FROM)"
  local want
  want=$(fingerprint)
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/lmp" ]; then
    step "set-up is up to date ($VENV)"
    return 0
  fi
  rm -f "$STAMP"
  check_tools
  local src
  src=$(lammps_source)
  if [ "$SOURCE" = trixie ]; then
    rm -f "$REMEMBERED"
  else
    mkdir -p "$BUILD" && echo "$SOURCE" >"$REMEMBERED"
  fi
  make_venv
  build_lammps "$src"
  install_lammps "$src"
  install_package
  verify
  echo "$want" >"$STAMP"
  step "set-up complete: $VENV/bin/lmp, $VENV/bin/mpirun, $VENV/bin/mlff-distiller"
}

main "$@"
