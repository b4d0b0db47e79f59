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


def run_lammps(
    script: str,
    workdir: Path,
    nprocs: int = 1,
    env: dict | None = None,
    timeout: float = 300,
    check: bool = True,
    launcher: tuple[str, ...] = (),
) -> subprocess.CompletedProcess:
    """Run an input under `mpirun -np nprocs [launcher] lmp` in workdir; returns the finished process."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "in.lmp").write_text(script)
    full_env = {**os.environ, **(env or {})}
    cmd = [str(MPIRUN), "-np", str(nprocs), *launcher, str(LMP), "-in", "in.lmp", "-nocite"]
    proc = subprocess.run(cmd, cwd=workdir, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"LAMMPS failed ({' '.join(cmd)}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def read_dump(path: Path) -> dict[str, np.ndarray]:
    """Columns of the last frame of a LAMMPS text dump, sorted by atom id."""
    lines = path.read_text().splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("ITEM: ATOMS"))
    names = lines[start].split()[2:]
    rows = np.array([[float(x) for x in line.split()] for line in lines[start + 1 :]])
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


def write_data_with_bonds(path: Path, atoms, elements) -> None:
    """`atom_style full` data with a bond between every pair of atoms closer than ASE's natural
    cutoffs, as molecular inputs come (orthorhombic or non-periodic boxes)."""
    from ase.data import atomic_masses, atomic_numbers
    from ase.neighborlist import natural_cutoffs, neighbor_list

    i, j = neighbor_list("ij", atoms, natural_cutoffs(atoms))
    bonds = [(a, b) for a, b in zip(i, j) if a < b]
    lo, hi = (
        (np.zeros(3), np.diag(atoms.cell.array))
        if atoms.pbc.all()
        else (atoms.positions.min(0) - 10.0, atoms.positions.max(0) + 10.0)
    )
    types = {el: k + 1 for k, el in enumerate(elements)}
    lines = [
        "# written by lammps_runner.write_data_with_bonds",
        "",
        f"{len(atoms)} atoms",
        f"{len(bonds)} bonds",
        f"{len(elements)} atom types",
        "1 bond types",
        "",
    ]
    lines += [f"{lo[k]:.10f} {hi[k]:.10f} {axis}lo {axis}hi" for k, axis in enumerate("xyz")]
    lines += ["", "Masses", ""] + [f"{types[el]} {atomic_masses[atomic_numbers[el]]}" for el in elements]
    lines += ["", "Atoms # full", ""]
    lines += [
        f"{k + 1} 1 {types[s]} 0.0 {x:.12f} {y:.12f} {z:.12f}"
        for k, (s, (x, y, z)) in enumerate(zip(atoms.get_chemical_symbols(), atoms.positions))
    ]
    lines += ["", "Bonds", ""] + [f"{k + 1} 1 {a + 1} {b + 1}" for k, (a, b) in enumerate(bonds)]
    path.write_text("\n".join(lines) + "\n")
