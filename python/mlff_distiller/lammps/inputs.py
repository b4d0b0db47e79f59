"""LAMMPS input lines that go with an exported model, defined once for every place that prints them."""

from __future__ import annotations

import sys
from pathlib import Path

UNITS = "metal"
SPECIAL_BONDS_FIX = "special_bonds lj/coul 1.0 1.0 1.0"


def plugin_path() -> Path:
    """Where scripts/setup.sh installs the LAMMPS plugin (lammps_plugin/): in this environment."""
    return Path(sys.prefix) / "lib" / "lammps-plugins" / "mlffplugin.so"


def plugin_lines(model_file: str, elements: list[str] | None = None) -> str:
    """The lines that run an exported model through the plugin pair style `mliap/halo`."""
    coeff = " ".join(elements) if elements else "<element of each atom type>"
    return f"plugin load {plugin_path()}\npair_style mliap/halo {model_file}\npair_coeff * * {coeff}"
