#!/usr/bin/env bash
# Runs the whole test suite against one LAMMPS source without touching .venv or build/lammps:
#
#   scripts/compat.sh SOURCE    SOURCE: trixie (Debian's LAMMPS 4 Feb 2025, the set-up's default),
#                               sid (Debian's LAMMPS 4 Jul 2026) or the top folder of a LAMMPS tree
#
# scripts/setup.sh sets up a venv and LAMMPS build of their own, build/compat/lammps-<version>/{venv,lammps}
# (kept, so a second run only runs the suite), then the suite runs with that venv's Python. The result
# goes to compat/lammps-<version>.json, the source of the compatibility table in docs/results.md; the script
# prints the table row and exits with the suite's status. JOBS and MLFF_CACHE work as for the set-up.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { printf 'compat: error: %s\n' "$*" >&2; exit 2; }
[ $# -eq 1 ] || die "one LAMMPS source expected: scripts/compat.sh trixie, scripts/compat.sh sid or scripts/compat.sh /path/to/lammps"
source=$1

tree=$(LAMMPS_SOURCE_DIR=$source bash "$ROOT/scripts/setup.sh" --source-dir)
version=$(sed -n 's/^#define LAMMPS_VERSION "\(.*\)"$/\1/p' "$tree/src/version.h")
[ -n "$version" ] || die "no LAMMPS_VERSION in $tree/src/version.h: give the top folder of a LAMMPS source tree"
name=lammps-${version// /}
dir=$ROOT/build/compat/$name
MLFF_VENV=$dir/venv MLFF_BUILD=$dir/lammps LAMMPS_SOURCE_DIR=$source bash "$ROOT/scripts/setup.sh"

printf '==> running the test suite against LAMMPS %s (%s)\n' "$version" "$dir/venv"
rm -f "$dir/junit.xml"
start=$(date +%s)
status=0
(cd "$ROOT" && "$dir/venv/bin/python" -m pytest -q -rs -o junit_family=xunit1 --junitxml="$dir/junit.xml" tests) \
  || status=$?
seconds=$(($(date +%s) - start))
[ -f "$dir/junit.xml" ] || die "pytest wrote no report (exit status $status, its output is above): fix what stopped it and run again"

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- . ':(exclude)compat' 2>/dev/null || commit+=" with uncommitted changes"
mkdir -p "$ROOT/compat"
"$dir/venv/bin/python" - "$dir/junit.xml" "$ROOT/compat/$name.json" "$version" "$source" "$seconds" "$commit" <<'EOF'
import datetime, json, platform, sys
import xml.etree.ElementTree as ET

import torch

junit, out, version, source, seconds, commit = sys.argv[1:]
passed, skips, failures = 0, {}, []
for case in ET.parse(junit).getroot().iter("testcase"):
    test = f"{case.get('file')}::{case.get('name')}"
    if case.find("skipped") is not None:
        skips[test] = case.find("skipped").get("message", "")
    elif case.find("failure") is not None or case.find("error") is not None:
        failures.append(test)
    else:
        passed += 1
result = {
    "lammps": version, "command": f"scripts/compat.sh {source}",
    "date": datetime.date.today().isoformat(), "commit": commit,
    "python": platform.python_version(), "torch": torch.__version__,
    "passed": passed, "skipped": len(skips), "failed": len(failures), "suite_seconds": int(seconds),
    "skips": skips, "failures": failures,
}
with open(out, "w") as f:
    json.dump(result, f, indent=1)
    f.write("\n")
print(f"==> wrote {out}; its row of the compatibility table in docs/results.md:")
print(f"| {version} | `{result['command']}` | {passed} | {len(skips)} | {len(failures)} | {result['date']}, {commit} |")
EOF
exit "$status"
