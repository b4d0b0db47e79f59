"""A committee watch on a LAMMPS run: `mlff-distiller md INPUT --committee M1 M2 ...`.

The run itself uses one student, as always. Every N steps LAMMPS calls ``committee_check`` (through
`fix python/invoke ... end_of_step`, set up by ``watch_lines``); it gathers the positions, lets each
committee member compute the forces, and takes the largest spread of an atom's force vector over
the members (``committee_force_spread``). Above the threshold, rank 0 prints a line saying that the
run has left the region the models were trained on. Every check is appended to ``committee.txt``
(step, spread in eV/A, seconds the check took) in the run folder, which `md` summarises at the end.

Every rank gathers the whole system and evaluates it (gathering is collective, and no rank then
waits for another's result); the cost is paid once per N steps.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, chemical_symbols

from ..model.calculator import StudentCalculator, committee_force_spread

SETTINGS_FILE = "committee.json"  # written by `md` into the run folder: members, every, threshold
LOG_FILE = "committee.txt"
WARNING = "mlff-distiller: committee warning"


def watch_lines(every: int) -> str:
    """The LAMMPS commands that start the watch (``md`` includes them before the first `run`)."""
    return (
        'python committee_check here "from mlff_distiller.lammps.watch import committee_check"\n'
        f"fix mlff_committee all python/invoke {every} end_of_step committee_check\n"
    )


def element_of_mass(mass: float) -> str:
    """The element whose standard atomic mass is nearest ``mass`` (LAMMPS types carry masses)."""
    z = int(np.argmin(np.abs(atomic_masses[1:] - mass))) + 1
    if abs(atomic_masses[z] - mass) > 0.1:
        raise ValueError(
            f"no element has the mass {mass} of a LAMMPS atom type: the committee watch "
            "names elements by their masses in the data file"
        )
    return chemical_symbols[z]


class CommitteeWatch:
    def __init__(self, members: list[str], threshold: float):
        self.calculators = [StudentCalculator(m) for m in members]
        self.threshold = threshold
        self.log = Path(LOG_FILE)
        self.log.write_text("# step spread_eV_per_A seconds\n")

    def check(self, lmp) -> float:
        start = time.perf_counter()
        atoms = gathered_atoms(lmp)
        forces = np.stack([calc.get_forces(atoms) for calc in self.calculators])
        spread = float(committee_force_spread(forces).max())
        step = int(lmp.extract_global("ntimestep"))
        if lmp.extract_setting("world_rank") == 0:
            with self.log.open("a") as fh:
                fh.write(f"{step} {spread:.6f} {time.perf_counter() - start:.6f}\n")
            if spread > self.threshold:
                print(
                    f"{WARNING} at step {step}: the members' forces on one atom differ by {spread:.3f} eV/A "
                    f"(threshold {self.threshold} eV/A): the run has left the region the models were trained on, "
                    "and its forces may be wrong",
                    flush=True,
                )
        return spread


def gathered_atoms(lmp) -> Atoms:
    """The whole system as ASE atoms (collective: every rank calls it), ordered by atom ID."""
    n = lmp.get_natoms()
    x = np.ctypeslib.as_array(lmp.gather_atoms("x", 1, 3), shape=(n * 3,)).reshape(n, 3)
    types = np.ctypeslib.as_array(lmp.gather_atoms("type", 0, 1), shape=(n,))
    ntypes = lmp.extract_setting("ntypes")
    masses = np.ctypeslib.as_array(lmp.extract_atom("mass"), shape=(ntypes + 1,))
    symbols = [element_of_mass(masses[t]) for t in types]
    lo, hi, xy, yz, xz, periodic, _ = lmp.extract_box()
    cell = [[hi[0] - lo[0], 0, 0], [xy, hi[1] - lo[1], 0], [xz, yz, hi[2] - lo[2]]]
    return Atoms(symbols, positions=x - np.asarray(lo), cell=cell, pbc=[bool(p) for p in periodic])


_watch: CommitteeWatch | None = None


def committee_check(lammps_ptr) -> None:
    """The callback of `fix python/invoke`: made once from ``SETTINGS_FILE``, then checks."""
    global _watch
    from lammps import lammps

    if _watch is None:
        settings = json.loads(Path(SETTINGS_FILE).read_text())
        _watch = CommitteeWatch(settings["members"], settings["threshold"])
    _watch.check(lammps(ptr=lammps_ptr))


SHOWN_WARNINGS = 10


def warnings(screen: str, screen_file: Path) -> str:
    """The run's first warnings, and how many more ``screen_file`` holds."""
    found = [line for line in screen.splitlines() if line.startswith(WARNING)]
    if not found:
        return "committee: no warning"
    more = len(found) - SHOWN_WARNINGS
    return "\n".join(found[:SHOWN_WARNINGS] + ([f"... {more} more warnings in {screen_file}"] if more > 0 else []))


def summary(workdir: Path) -> str:
    """One line on the checks of a finished run (from ``LOG_FILE``)."""
    table = np.loadtxt(workdir / LOG_FILE, comments="#", ndmin=2)
    if not len(table):
        return "committee: no check ran (the run was shorter than the check interval)"
    worst = int(np.argmax(table[:, 1]))
    check_ms = 1e3 * float(np.median(table[:, 2]))  # the median: the first check also loads the members
    every = table[1, 0] - table[0, 0] if len(table) > 1 else table[0, 0]
    return (
        f"committee: {len(table)} checks, largest force spread {table[worst, 1]:.3f} eV/A at step "
        f"{int(table[worst, 0])}; {check_ms:.1f} ms per check, {check_ms / every:.2f} ms per step on average"
    )
