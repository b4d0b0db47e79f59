"""Running the real LAMMPS built by scripts/setup.sh and reading what it wrote."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
LMP = VENV_BIN / "lmp"
MPIRUN = VENV_BIN / "mpirun"
HERE = Path(__file__).resolve().parent


# appends the six components of `compute press all pressure NULL virial` to values.txt
PRESSURE_PRINTS = """
print "pxx $(c_press[1]:%.17g)" append values.txt
print "pyy $(c_press[2]:%.17g)" append values.txt
print "pzz $(c_press[3]:%.17g)" append values.txt
print "pxy $(c_press[4]:%.17g)" append values.txt
print "pxz $(c_press[5]:%.17g)" append values.txt
print "pyz $(c_press[6]:%.17g)" append values.txt
"""


def run_lammps(script: str, workdir: Path, nprocs: int = 1, env: dict | None = None,
               timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    """Run an input under `mpirun -np nprocs lmp` in workdir; returns the finished process."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "in.lmp").write_text(script)
    full_env = {**os.environ, **(env or {})}
    cmd = [str(MPIRUN), "-np", str(nprocs), str(LMP), "-in", "in.lmp", "-nocite"]
    proc = subprocess.run(cmd, cwd=workdir, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"LAMMPS failed ({' '.join(cmd)}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def read_dump(path: Path) -> dict[str, np.ndarray]:
    """Columns of the last frame of a LAMMPS text dump, sorted by atom id."""
    lines = path.read_text().splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("ITEM: ATOMS"))
    names = lines[start].split()[2:]
    rows = np.array([[float(x) for x in line.split()] for line in lines[start + 1:]])
    rows = rows[np.argsort(rows[:, names.index("id")])]
    return {name: rows[:, k] for k, name in enumerate(names)}


def read_values(path: Path) -> dict[str, float]:
    """`name value` lines written by LAMMPS `print ... file`."""
    out = {}
    for line in path.read_text().split("\n"):
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = float(parts[1])
    return out
