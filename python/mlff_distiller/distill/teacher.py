"""The teacher: the expensive reference calculator whose energies and forces the student learns.

A teacher is any ASE calculator. `make_teacher` builds one from a short name:

* ``gfn2-xtb`` -- GFN2-xTB through tblite (built in, energies in eV, forces in eV/A);
* ``package.module:Name`` -- any importable class or factory function that returns an
  ASE calculator when called with no arguments (for example your own DFT wrapper).

A teacher may declare the largest atomic number it handles in an attribute
``max_atomic_number``; `check_elements` uses it to refuse unsupported structures *before*
any expensive calculation starts.
"""

from __future__ import annotations

import importlib
from typing import Iterable

from ase import Atoms
from ase.calculators.calculator import BaseCalculator
from ase.data import chemical_symbols

GFN2_XTB = "gfn2-xtb"
BUILTIN_TEACHERS = (GFN2_XTB,)

# GFN2-xTB is parametrised for H..Rn.
GFN2_XTB_MAX_Z = 86


def make_teacher(name: str) -> BaseCalculator:
    """Return the ASE calculator called `name` (``gfn2-xtb`` or ``package.module:Name``).

    Raises ValueError with a hint on how to fix the name when it cannot be resolved.
    """
    if name.lower() == GFN2_XTB:
        return make_gfn2_xtb()
    if ":" in name:
        return _instantiate_import_path(name)
    raise ValueError(
        f"unknown teacher {name!r}: use one of {', '.join(BUILTIN_TEACHERS)} "
        "or an import path 'package.module:ClassName' of an ASE calculator"
    )


def make_gfn2_xtb() -> BaseCalculator:
    """GFN2-xTB from tblite: quiet, and without reusing wavefunctions between structures.

    ``cache_api=False`` makes every structure start its SCF from scratch, so a label does not
    depend on which structure happened to be computed before it (this keeps resumed runs
    identical to uninterrupted ones).
    """
    try:
        from tblite.ase import TBLite
    except ModuleNotFoundError as exc:
        raise RuntimeError("the gfn2-xtb teacher needs tblite: pip install tblite (or the 'distill' extra)") from exc
    calc = TBLite(method="GFN2-xTB", verbosity=0, cache_api=False)
    calc.max_atomic_number = GFN2_XTB_MAX_Z  # read by check_elements
    return calc


def _instantiate_import_path(path: str) -> BaseCalculator:
    """Import ``package.module:Name`` and call ``Name()``; the result must be a calculator."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"bad teacher import path {path!r}: write it as 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(
            f"bad teacher import path {path!r}: cannot import module {module_name!r} ({exc}); "
            "check the spelling and that the module is on PYTHONPATH"
        ) from exc
    factory = getattr(module, attribute, None)
    if factory is None or not callable(factory):
        raise ValueError(
            f"bad teacher import path {path!r}: module {module_name!r} has no class or function named {attribute!r}"
        )
    calc = factory()
    if not (hasattr(calc, "get_potential_energy") and hasattr(calc, "get_forces")):
        raise ValueError(
            f"teacher {path!r} did not return an ASE calculator (got {type(calc).__name__}); "
            "it must provide energies and forces"
        )
    return calc


def check_elements(teacher: BaseCalculator, structures: Iterable[Atoms]) -> None:
    """Raise ValueError if any structure holds an element beyond the teacher's range.

    Teachers that do not declare ``max_atomic_number`` are trusted to handle everything.
    """
    max_z = getattr(teacher, "max_atomic_number", None)
    if max_z is None:
        return
    too_heavy = sorted({int(z) for atoms in structures for z in atoms.numbers if z > max_z})
    if too_heavy:
        names = ", ".join(chemical_symbols[z] for z in too_heavy)
        raise ValueError(
            f"the teacher {type(teacher).__name__} handles elements up to "
            f"{chemical_symbols[max_z]} (Z={max_z}) but the structures contain {names}; "
            "remove those structures or choose another teacher"
        )
