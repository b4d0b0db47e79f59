"""Structures built from nothing: random water boxes start without intermolecular contacts."""

import numpy as np
import pytest
from ase.neighborlist import neighbor_list

from mlff_distiller.structures import MIN_INTERMOLECULAR_HH, MIN_INTERMOLECULAR_OH, random_water_box, water_box_length


def closest_intermolecular(atoms) -> dict:
    """The shortest H...H and O...H distances between different molecules (O H H order), by ASE."""
    i, j, d = neighbor_list("ijd", atoms, 3.0)
    numbers = atoms.numbers
    other = i // 3 != j // 3
    hh = other & (numbers[i] == 1) & (numbers[j] == 1)
    oh = other & (numbers[i] != numbers[j])
    return {"HH": d[hh].min(), "OH": d[oh].min()}


@pytest.mark.parametrize("n_molecules, seed", [(8, 0), (16, 3), (64, 0), (64, 7), (343, 3)])  # 16: a denser grid
def test_random_water_box_keeps_molecules_apart(n_molecules, seed):
    atoms = random_water_box(n_molecules, 1.0, seed)
    assert len(atoms) == 3 * n_molecules
    assert np.allclose(atoms.cell.lengths(), water_box_length(n_molecules, 1.0))
    closest = closest_intermolecular(atoms)
    assert closest["HH"] >= MIN_INTERMOLECULAR_HH and closest["OH"] >= MIN_INTERMOLECULAR_OH, closest
    bonds = np.linalg.norm(atoms.positions[1::3] - atoms.positions[::3], axis=1)  # molecules stay whole
    assert np.allclose(bonds, 0.9572)


def test_a_box_too_dense_for_clear_orientations_says_so():
    with pytest.raises(ValueError, match="lower density"):
        random_water_box(64, 3.0, 0)
