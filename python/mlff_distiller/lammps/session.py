"""Attach a student model to a LAMMPS instance driven from Python, in one call."""
from __future__ import annotations

from pathlib import Path

from .export import build_unified
from .ghosts import required_cutoff


def attach(lmp, model: str | Path = "default", elements: list[str] | None = None, method: str = "analytic",
           dtype: str = "float64", ghost_neighbours: bool = True):
    """Activate ML-IAP's Python coupling, load the model and issue pair_style / pair_coeff.

    lmp: a ``lammps.lammps`` or ``lammps.PyLammps`` instance whose box and atoms exist.
    elements: element of each atom type in order (default: the model's own list, which must
    then match the number of atom types). Returns the ML-IAP model object.
    """
    import lammps.mliap

    raw = getattr(lmp, "lmp", lmp)  # PyLammps wraps a lammps.lammps
    unified = build_unified(model, method, dtype)
    elements = elements or unified.model.elements
    lammps.mliap.activate_mliappy(raw)
    lammps.mliap.load_unified(unified)
    config = unified.model.config
    if ghost_neighbours and config.n_layers > 1:
        raw.command(f"comm_modify cutoff {required_cutoff(config.n_layers, config.cutoff):g}")
        raw.command("pair_style mliap unified EXISTS 1")
    else:
        raw.command("pair_style mliap unified EXISTS 0")
    raw.command(f"pair_coeff * * {' '.join(elements)}")
    return unified
