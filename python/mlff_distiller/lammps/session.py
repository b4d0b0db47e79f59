"""Attach a student model to a LAMMPS instance driven from Python, in one call."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .export import build_unified, write_export
from .inputs import plugin_path

PAIR_STYLES = ("mliap/halo", "mliap unified")


def attach(
    lmp,
    model: str | Path = "default",
    elements: list[str] | None = None,
    method: str = "analytic",
    dtype: str = "float64",
    pair_style: str = "mliap/halo",
):
    """Issue pair_style and pair_coeff for a student model on a LAMMPS instance whose box exists.

    lmp: a ``lammps.lammps`` instance, or a ``lammps.PyLammps`` (LAMMPS versions that have it).
    elements: element of each atom type in order (default: the model's own list, which must
        then match the number of atom types); NULL for types the model leaves out.
    pair_style: "mliap/halo" (our plugin: any box, any number of ranks) or "mliap unified"
        (stock ML-IAP: a molecule or cluster in a non-periodic box on one rank).
    Returns the ML-IAP unified model object (for mliap/halo, the one written to the file the
    plugin loads).
    """
    lmp = as_lammps(lmp)
    unified = build_unified(model, method, dtype)
    elements = elements or unified.element_types
    if pair_style == "mliap/halo":
        with tempfile.TemporaryDirectory() as folder:  # the plugin reads the file at pair_style
            path = write_export(unified, Path(folder) / "model.mliap")
            lmp.command(f"plugin load {plugin_path()}")
            lmp.command(f"pair_style mliap/halo {path}")
            lmp.command(f"pair_coeff * * {' '.join(elements)}")
    elif pair_style == "mliap unified":
        import lammps.mliap

        lammps.mliap.activate_mliappy(lmp)
        lammps.mliap.load_unified(unified)
        lmp.command("pair_style mliap unified EXISTS 0")
        lmp.command(f"pair_coeff * * {' '.join(elements)}")
    else:
        raise ValueError(f"unknown pair_style {pair_style!r}: use one of {PAIR_STYLES}")
    return unified


def as_lammps(lmp):
    """The ``lammps.lammps`` object behind ``lmp``: itself, or the one a PyLammps wraps."""
    import lammps

    if isinstance(lmp, lammps.lammps):
        return lmp
    inner = getattr(lmp, "lmp", None)  # PyLammps keeps its lammps.lammps here
    if isinstance(inner, lammps.lammps):
        return inner
    raise TypeError(f"attach() needs a lammps.lammps (or PyLammps) instance, not {type(lmp).__name__}")
