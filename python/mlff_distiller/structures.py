"""Structures built from nothing, for training data, benchmarks, tests and ``inputs/``: periodic
boxes of randomly oriented water molecules, and aspirin, the molecule of the main job."""

from __future__ import annotations

import numpy as np
from ase import Atoms, units
from ase.calculators.tip3p import angleHOH, rOH

WATER_MASS_G_PER_MOL = 18.015
ASPIRIN_SMILES = "CC(=O)OC1=CC=CC=C1C(=O)O"


def water_box_length(n_molecules: int, density_g_cm3: float) -> float:
    """Edge (A) of the cubic box holding `n_molecules` waters at `density_g_cm3`."""
    grams = n_molecules * WATER_MASS_G_PER_MOL / units.mol
    volume_A3 = grams / density_g_cm3 * 1e24  # 1 cm^3 = 1e24 A^3
    return volume_A3 ** (1.0 / 3.0)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation matrix (QR of a Gaussian matrix, sign-fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def water_molecule_geometry() -> np.ndarray:
    """O, H, H positions (A) of a TIP3P-geometry water centred on its oxygen."""
    half_angle = np.radians(angleHOH) / 2
    return np.array(
        [
            [0.0, 0.0, 0.0],
            [rOH * np.sin(half_angle), 0.0, rOH * np.cos(half_angle)],
            [-rOH * np.sin(half_angle), 0.0, rOH * np.cos(half_angle)],
        ]
    )


def random_water_box(n_molecules: int = 27, density_g_cm3: float = 1.0, seed: int = 0) -> Atoms:
    """Periodic cubic box of randomly oriented waters (atom order O H H, O H H, ...).

    Oxygens sit on the sites of a simple cubic grid (chosen at random when the grid has more
    sites than molecules), shifted by a small random jitter; the grid spacing (~3.1 A at
    1 g/cm^3) keeps molecules from overlapping whatever their orientation. Hydrogens may stick
    out of the cell: molecules are kept whole, as ASE's TIP3P calculator requires.
    """
    rng = np.random.default_rng(seed)
    length = water_box_length(n_molecules, density_g_cm3)
    per_edge = int(np.ceil(n_molecules ** (1.0 / 3.0) - 1e-9))
    spacing = length / per_edge
    grid = np.array([(i, j, k) for i in range(per_edge) for j in range(per_edge) for k in range(per_edge)], dtype=float)
    sites = grid[np.sort(rng.choice(len(grid), size=n_molecules, replace=False))]
    oxygens = (sites + 0.5) * spacing + rng.uniform(-0.2, 0.2, size=sites.shape)
    geometry = water_molecule_geometry()
    positions = [oxygen + geometry @ random_rotation(rng).T for oxygen in oxygens]
    atoms = Atoms("OH2" * n_molecules, positions=np.concatenate(positions), cell=[length] * 3, pbc=True)
    return atoms  # not wrapped: TIP3P needs each molecule's atoms next to each other
