"""mlff-distiller: a distilled PaiNN force field with analytic forces, for LAMMPS.

What users type, from one place::

    from mlff_distiller import PaiNN, PaiNNConfig, load_model, save_model, StudentCalculator, attach, export

Each name loads its module on first use, so `import mlff_distiller` (and the command line's start)
does not pull in torch, ASE or LAMMPS.
"""

from importlib import import_module

__version__ = "0.1.0"

# public name -> the module (relative to this package) that defines it
_EXPORTS = {
    "PaiNN": "model.painn",
    "PaiNNConfig": "model.painn",
    "load_model": "model.io",
    "save_model": "model.io",
    "StudentCalculator": "model.calculator",
    "attach": "lammps.session",
    "export": "lammps.export",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
