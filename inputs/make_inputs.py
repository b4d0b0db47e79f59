"""Writes the data files of the ready inputs (seeded; run again to regenerate them identically).

.venv/bin/python inputs/make_inputs.py
"""

from pathlib import Path

import numpy as np
from ase import Atoms

from mlff_distiller.files import atomic_path
from mlff_distiller.distill.sampling import conformer_to_atoms, embed_conformers
from mlff_distiller.structures import ASPIRIN_SMILES, random_water_box

HERE = Path(__file__).resolve().parent
MOLECULE_ELEMENTS = ["H", "C", "O"]


def aspirin() -> Atoms:
    mol = embed_conformers(ASPIRIN_SMILES, 1, seed=0)
    return conformer_to_atoms(mol, mol.GetConformer().GetId())


def in_vacuum_box(atoms: Atoms, vacuum: float = 12.0) -> Atoms:
    atoms = atoms.copy()
    atoms.center(vacuum=vacuum)
    atoms.pbc = False
    return atoms


def sixteen_copies(molecule: Atoms, spacing: float = 15.0, seed: int = 0) -> Atoms:
    """16 randomly rotated copies on a 4x4 grid, further apart than the model's reach (3 x 5 A)."""
    rng = np.random.default_rng(seed)
    box = Atoms()
    for k in range(16):
        copy = molecule.copy()
        copy.rotate(rng.uniform(0, 360), rng.normal(size=3), center="COM")
        copy.translate(np.array([k % 4, k // 4, 0]) * spacing - copy.get_center_of_mass())
        box += copy
    return box


def write(atoms: Atoms, path: Path, elements) -> None:
    with atomic_path(path) as temporary:
        atoms.write(temporary, format="lammps-data", specorder=elements, masses=True)
    print(f"wrote {path.relative_to(HERE.parent)} ({len(atoms)} atoms)")


if __name__ == "__main__":
    molecule = aspirin()
    write(in_vacuum_box(molecule), HERE / "aspirin" / "aspirin.data", MOLECULE_ELEMENTS)
    write(in_vacuum_box(sixteen_copies(molecule)), HERE / "batch16" / "aspirin16.data", MOLECULE_ELEMENTS)
    write(random_water_box(64, 1.0, seed=0), HERE / "water" / "water192.data", ["H", "O"])
