"""Checks that stop a LAMMPS run instead of letting it give silently wrong forces.

Both pair styles run them: stock `mliap unified` through ``stock.py``, the plugin `mliap/halo`
in its C++ (settings) and here (model output).
"""

from __future__ import annotations

import numpy as np

from .inputs import SPECIAL_BONDS_FIX, UNITS, plugin_lines

# Beyond these the model is far outside anything it was trained on (atoms on top of each other):
# stopping is the only honest answer. Real MD forces stay below ~50 eV/A.
MAX_PAIR_GRADIENT = 1e4  # eV/A, |dE/dr_ij| of one pair
MAX_ATOM_ENERGY = 1e5  # eV, |E_i| of one atom


class ModelInputError(RuntimeError):
    """The LAMMPS input asks for something the model cannot do right."""


class UnphysicalOutputError(RuntimeError):
    """The model returned non-finite or absurd energies or forces."""


def check_units(units: str) -> None:
    if units != UNITS:
        raise ModelInputError(
            f"the model works in LAMMPS `units {UNITS}` (eV, A, ps) but this input uses "
            f"`units {units}`; forces would be silently wrong: use `units {UNITS}`"
        )


def check_special_bonds(molecular: bool, factors: list[float]) -> None:
    """factors: special_bonds factors of 1-2, 1-3, 1-4 neighbours (LJ and Coulomb)."""
    if molecular and any(f != 1.0 for f in factors):
        raise ModelInputError(
            "with bonds in the data and special_bonds factors other than 1, LAMMPS removes bonded pairs from the "
            "neighbour list and the model would see broken molecules (silently wrong forces): add "
            f"`{SPECIAL_BONDS_FIX}` before the run"
        )


def refuse_ghost_neighbour_mode() -> None:
    raise ModelInputError(
        "`pair_style mliap unified FILE 1` (ghost-neighbour mode) is not supported: its memory grows with "
        "atoms x pairs, every rank recomputes a shell of layers x cutoff, and LAMMPS crashes in it on several "
        "ranks. Use the plugin pair style, exact on any number of ranks:\n" + plugin_lines("FILE")
    )


def refuse_ghost_messages(n_layers: int) -> None:
    raise ModelInputError(
        f"this {n_layers}-layer model passes messages through ghost atoms (periodic images or atoms of other "
        "MPI ranks), which stock `pair_style mliap unified` cannot do exactly. Use the plugin pair style:\n"
        + plugin_lines("FILE")
    )


def check_model_output(
    energies: np.ndarray, grad: np.ndarray, r_ij: np.ndarray, edge_i: np.ndarray, edge_j: np.ndarray, atom_ids
) -> None:
    """Stop on non-finite or absurd energies [N] or pair gradients [E,3], naming the closest pair.

    Runs on host copies that LAMMPS needs anyway, so it adds no device synchronisation.
    atom_ids(indices) -> LAMMPS atom IDs of model atom indices."""
    if within(energies, MAX_ATOM_ENERGY) and within(grad, MAX_PAIR_GRADIENT):
        return
    what = "non-finite" if not (np.isfinite(energies).all() and np.isfinite(grad).all()) else "absurd"
    where = ""
    if len(r_ij):
        distance = np.linalg.norm(r_ij, axis=1)
        k = int(np.argmin(distance))
        i, j = atom_ids(np.array([edge_i[k], edge_j[k]]))
        where = f"; the closest atoms are IDs {i} and {j} at {distance[k]:.4g} A"
    raise UnphysicalOutputError(
        f"the model gave {what} energies or forces (largest |E_i| {np.nanmax(np.abs(energies), initial=0):.3g} eV, "
        f"largest |dE/dr_ij| {np.nanmax(np.abs(grad), initial=0):.3g} eV/A){where}. Atoms this close are outside "
        "what the model knows: check the starting structure (overlapping atoms, wrong units or box) or the time "
        "step"
    )


def within(values: np.ndarray, limit: float) -> bool:
    """|values| <= limit everywhere, and no NaN (NaN compares False); no temporary array."""
    return values.size == 0 or (values.min() >= -limit and values.max() <= limit)
