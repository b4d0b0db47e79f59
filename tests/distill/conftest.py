"""A tiny labelled data set for the distill tests: distorted small molecules with EMT labels.

EMT is not chemistry, but it is instant and smooth, which is all that tests of the training
machinery need.
"""

import numpy as np
import pytest
from ase.build import molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

MOLECULES = ("H2O", "CH4", "NH3", "CH3OH")


def labelled_molecules(n_per_molecule: int = 6, seed: int = 0, stdev: float = 0.08):
    """Rattled copies of a few molecules, each with EMT energy and forces frozen in a single point."""
    rng = np.random.default_rng(seed)
    structures = []
    for name in MOLECULES:
        for _ in range(n_per_molecule):
            atoms = molecule(name)
            atoms.positions += rng.normal(scale=stdev, size=atoms.positions.shape)
            atoms.calc = EMT()
            energy, forces = atoms.get_potential_energy(), atoms.get_forces()
            atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
            atoms.info["molecule"] = name
            structures.append(atoms)
    return structures


@pytest.fixture(scope="session")
def structures():
    return labelled_molecules()


@pytest.fixture
def data_file(tmp_path, structures):
    import ase.io

    path = tmp_path / "data.extxyz"
    ase.io.write(path, structures)
    return path
