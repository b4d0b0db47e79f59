"""Structures built from nothing: random water boxes start without intermolecular contacts."""

import numpy as np
import pytest
from ase import Atoms
from ase.neighborlist import neighbor_list

from mlff_distiller.structures import (
    MIN_INTERMOLECULAR_HH,
    MIN_INTERMOLECULAR_OH,
    closest_intermolecular_hh,
    pair_push,
    random_water_box,
    water_box_length,
)


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


def test_closest_intermolecular_hh_skips_the_molecules_own_pair_and_wraps():
    atoms = random_water_box(8, 1.0, seed=2)
    d = atoms.get_all_distances(mic=True)
    expected = min(
        d[a, b] for a in range(len(atoms)) for b in range(len(atoms)) if a % 3 and b % 3 and a // 3 != b // 3
    )
    a, b, distance = closest_intermolecular_hh(atoms)
    assert a % 3 and b % 3 and a // 3 != b // 3
    assert distance == expected == d[a, b]


def test_pair_push_is_positive_when_the_forces_part_the_pair():
    pair = Atoms("HH", positions=[[0, 0, 0], [0.0, 0.0, 1.0]], cell=[10, 10, 10], pbc=True)
    apart = np.array([[0.0, 0.3, -1.0], [0.0, 0.0, 1.0]])
    assert pair_push(pair, apart, 0, 1) == 1.0
    assert pair_push(pair, -apart, 0, 1) == -1.0
    across = Atoms(
        "HH", positions=[[0, 0, 0.5], [0, 0, 9.5]], cell=[10, 10, 10], pbc=True
    )  # 1 A apart, through the wall
    assert pair_push(across, np.array([[0, 0, 1.0], [0, 0, -1.0]]), 0, 1) == 1.0
