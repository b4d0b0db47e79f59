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


# Closest intermolecular approaches a random box may start with (A): liquid water's own lie above
# them (H...H from ~1.9, the hydrogen bond's O...H from ~1.6); closer pairs sit on the repulsive wall,
# where a start-up would fling them apart.
MIN_INTERMOLECULAR_HH = 1.8
MIN_INTERMOLECULAR_OH = 1.6
ORIENTATION_TRIES = 100  # per molecule and sweep
SWEEPS = 50
NEIGHBOUR_SITES = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])


def random_water_box(n_molecules: int = 27, density_g_cm3: float = 1.0, seed: int = 0) -> Atoms:
    """Periodic cubic box of randomly oriented waters (atom order O H H, O H H, ...).

    Oxygens sit on the sites of a simple cubic grid (chosen at random when the grid has more
    sites than molecules), shifted by a small random jitter, each molecule turned at random. Then,
    sweep after sweep, every molecule that comes closer to a molecule of a neighbouring site than
    ``MIN_INTERMOLECULAR_HH`` (H...H) or ``MIN_INTERMOLECULAR_OH`` (O...H), periodic images
    included, takes a new jitter and orientation clear of its neighbours (both molecules of a
    contact are redrawn, so neither blocks the other for good). Hydrogens may stick out of the
    cell: molecules are kept whole, as ASE's TIP3P calculator requires.
    """
    rng = np.random.default_rng(seed)
    length = water_box_length(n_molecules, density_g_cm3)
    per_edge = int(np.ceil(n_molecules ** (1.0 / 3.0) - 1e-9))
    spacing = length / per_edge
    grid = np.array([(i, j, k) for i in range(per_edge) for j in range(per_edge) for k in range(per_edge)])
    sites = grid[np.sort(rng.choice(len(grid), size=n_molecules, replace=False))]
    oxygens = (sites + 0.5) * spacing + rng.uniform(-0.2, 0.2, size=sites.shape)
    geometry = water_molecule_geometry()
    positions = np.stack([oxygen + geometry @ random_rotation(rng).T for oxygen in oxygens])
    occupant = np.full((per_edge,) * 3, -1)  # the molecule on each site
    occupant[tuple(sites.T)] = np.arange(n_molecules)
    neighbours = []
    for m, site in enumerate(sites):
        near = np.unique(occupant[tuple(((site + NEIGHBOUR_SITES) % per_edge).T)])
        neighbours.append(near[(near >= 0) & (near != m)])
    for _ in range(SWEEPS):
        in_contact = [m for m in range(n_molecules) if not _clear_of(positions[m], positions[neighbours[m]], length)]
        if not in_contact:
            return Atoms("OH2" * n_molecules, positions=positions.reshape(-1, 3), cell=[length] * 3, pbc=True)
        for m in in_contact:
            for _ in range(ORIENTATION_TRIES):
                oxygen = (sites[m] + 0.5) * spacing + rng.uniform(-0.2, 0.2, size=3)
                positions[m] = oxygen + geometry @ random_rotation(rng).T
                if _clear_of(positions[m], positions[neighbours[m]], length):
                    break
    raise ValueError(
        f"random_water_box: {len(in_contact)} of {n_molecules} waters still touch a neighbour after {SWEEPS} "
        f"sweeps at {density_g_cm3} g/cm^3; use a lower density"
    )


def _clear_of(molecule: np.ndarray, placed: np.ndarray, length: float) -> bool:
    """Whether a water's atoms [3, 3] (O H H) keep the minimum intermolecular distances from the
    molecules ``placed`` [M, 3, 3] in a periodic cube of side ``length`` (minimum image)."""
    d = molecule[:, None, None, :] - placed[None, :, :, :]  # [3, M, 3, 3]
    r = np.linalg.norm(d - length * np.round(d / length), axis=-1)
    hh = r[1:, :, 1:]
    oh = np.concatenate([r[0, :, 1:].ravel(), r[1:, :, 0].ravel()])
    return bool(hh.min(initial=np.inf) >= MIN_INTERMOLECULAR_HH and oh.min(initial=np.inf) >= MIN_INTERMOLECULAR_OH)


def closest_intermolecular_hh(atoms: Atoms) -> tuple[int, int, float]:
    """(a, b, distance in A) of the closest two hydrogens of different molecules in a water box
    whose atoms come O H H per molecule (as ``random_water_box`` writes them), minimum image."""
    d = atoms.get_all_distances(mic=True)
    hydrogens = np.flatnonzero(atoms.numbers == 1)
    same_molecule = (hydrogens[:, None] // 3) == (hydrogens[None, :] // 3)
    pair = np.where(same_molecule, np.inf, d[np.ix_(hydrogens, hydrogens)])
    a, b = np.unravel_index(np.argmin(pair), pair.shape)
    return int(hydrogens[a]), int(hydrogens[b]), float(pair[a, b])


def pair_push(atoms: Atoms, forces: np.ndarray, a: int, b: int) -> float:
    """The force pushing atoms a and b apart along their axis, (F_b - F_a) . u / 2 with u the unit
    vector from a to b, minimum image (eV/A; negative: pulling them together)."""
    axis = atoms.get_distance(a, b, mic=True, vector=True)
    return float((forces[b] - forces[a]) @ (axis / np.linalg.norm(axis)) / 2)
