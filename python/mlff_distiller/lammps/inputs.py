"""LAMMPS input lines that go with an exported model, defined once for every place that prints them."""

from __future__ import annotations

import sys
from pathlib import Path

UNITS = "metal"
SPECIAL_BONDS_FIX = "special_bonds lj/coul 1.0 1.0 1.0"


def plugin_path() -> Path:
    """Where scripts/setup.sh installs the LAMMPS plugin (lammps_plugin/): in this environment."""
    return Path(sys.prefix) / "lib" / "lammps-plugins" / "mlffplugin.so"


def plugin_lines(model_file: str, elements: list[str] | None = None, style: str = "mliap/halo") -> str:
    """The lines that run a model through a plugin pair style: `mliap/halo` for an export (.mliap),
    `mliap/aoti` for a compiled force step (.pt2)."""
    coeff = " ".join(elements) if elements else "<element of each atom type>"
    return f"plugin load {plugin_path()}\npair_style {style} {model_file}\npair_coeff * * {coeff}"
