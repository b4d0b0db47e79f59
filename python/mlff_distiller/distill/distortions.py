"""Structures beyond what classical MD visits: what a student meets in its own hot or crowded MD.

MMFF94 dynamics (``sampling.py``) never leaves the MMFF surface: its bond lengths and close
contacts are not the teacher's. The samplers here start from the teacher's own minima or from any
structure and cover, on purpose, a little more than MD at the target temperatures would:

* ``normal_mode_samples``: the classical harmonic (Boltzmann) distribution around a
  teacher-relaxed minimum at several temperatures (up to ~1,500 K), from the teacher's Hessian
  by finite differences (ASE ``Vibrations``), as ANI's data sets do;
* ``random_displacements``: isotropic Gaussian displacements over a range of amplitudes;
* ``contact_pairs``: two molecules (or a cluster and one more molecule), randomly oriented, at
  a prescribed closest interatomic distance, from hydrogen-bond range down to a clash;
* ``compressed_water``: a water box squeezed to a higher density, molecules kept whole.

Every function is deterministic given its ``rng`` (a ``numpy.random.Generator``) and returns
copies without calculator, constraints or momenta, each with its provenance in ``info``:
``sampler`` plus that sampler's parameters (``temperature``, ``amplitude``, ``contact``,
``density_factor``) and whatever ``info`` the starting structure carried (``molecule``, ...).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import BaseCalculator
from ase.optimize import BFGS
from ase.vibrations import Vibrations

from ..structures import random_rotation
from .sampling import geometry_copy

# Harmonic amplitudes grow as 1/frequency: a soft torsion would be pulled far along a straight
# line, which bends the bonds instead of turning the group. Modes softer than this are sampled
# as if they had this frequency.
MIN_SAMPLED_WAVENUMBER = 100.0  # cm^-1
# angular frequency (rad per ASE time unit) of 1 cm^-1: 2 pi c, c in cm per ASE time unit
CM_TO_ASE_FREQUENCY = 2 * np.pi * units._c * units.m / units.s / 1e8


def provenance_copy(atoms: Atoms, sampler: str, **parameters) -> Atoms:
    """Geometry copy of ``atoms`` keeping its ``info`` and recording how it was made."""
    copy = geometry_copy(atoms)
    copy.info.update(atoms.info)
    copy.info.update(sampler=sampler, **parameters)
    return copy


# ----------------------------------------------------------------------------------------------
# Teacher minima and normal modes
# ----------------------------------------------------------------------------------------------
def relax(atoms: Atoms, calculator: BaseCalculator, fmax: float = 0.01, steps: int = 500) -> Atoms:
    """The structure relaxed on ``calculator``'s surface (BFGS to ``fmax`` eV/A); RuntimeError
    naming the structure when it does not converge in ``steps``."""
    relaxed = geometry_copy(atoms)
    relaxed.info.update(atoms.info)
    relaxed.calc = calculator
    if not BFGS(relaxed, logfile=None).run(fmax=fmax, steps=steps):
        raise RuntimeError(
            f"relaxing {relaxed.get_chemical_formula()} ({atoms.info.get('molecule', '')}) did not "
            f"reach fmax {fmax} eV/A in {steps} steps: start from a better geometry or raise steps"
        )
    relaxed.calc = None
    return relaxed


def hessian(atoms: Atoms, calculator: BaseCalculator, delta: float = 0.01) -> np.ndarray:
    """[3N,3N] Hessian (eV/A^2) by central differences of ``calculator``'s forces (6N calls)."""
    atoms = geometry_copy(atoms)
    atoms.calc = calculator
    with tempfile.TemporaryDirectory() as cache:  # Vibrations caches displaced forces in files
        vibrations = Vibrations(atoms, name=str(Path(cache) / "vib"), delta=delta)
        vibrations.run()
        return vibrations.get_vibrations().get_hessian_2d()


def vibrational_modes(atoms: Atoms, hessian_2d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Squared angular frequencies [M] (ASE units) and mass-weighted modes [M,3N] of the
    vibrations: the Hessian's mass-weighted eigenpairs without the 6 (5 for a linear molecule)
    smallest in magnitude, which are the rigid translations and rotations."""
    inv_sqrt_mass = np.repeat(1.0 / np.sqrt(atoms.get_masses()), 3)
    weighted = hessian_2d * np.outer(inv_sqrt_mass, inv_sqrt_mass)
    omega2, modes = np.linalg.eigh(0.5 * (weighted + weighted.T))
    rank = np.linalg.matrix_rank(atoms.positions - atoms.positions.mean(0), tol=1e-3)
    rigid = {0: 3, 1: 5}.get(rank, 6)
    order = np.argsort(np.abs(omega2))
    vibrations = np.sort(order[rigid:])
    return omega2[vibrations], modes[:, vibrations].T


def normal_mode_samples(
    minimum: Atoms,
    hessian_2d: np.ndarray,
    temperatures: Sequence[float],
    n_per_temperature: int,
    rng: np.random.Generator,
) -> list[Atoms]:
    """Geometries from the classical harmonic distribution around ``minimum`` at each temperature.

    Each vibrational mode k gets a mass-weighted amplitude q_k ~ N(0, kT / omega_k^2), so that
    every mode holds kT/2 of potential energy on average, as in equilibrium MD at T; modes
    softer than ``MIN_SAMPLED_WAVENUMBER`` are sampled as if that stiff. Positions are
    x = x0 + M^(-1/2) sum_k q_k e_k. Provenance: ``sampler="normal_modes"``, ``temperature``.
    """
    omega2, modes = vibrational_modes(minimum, hessian_2d)
    omega2_floor = (MIN_SAMPLED_WAVENUMBER * CM_TO_ASE_FREQUENCY) ** 2
    stdev = np.sqrt(units.kB / np.maximum(omega2, omega2_floor))  # per unit temperature
    inv_sqrt_mass = np.repeat(1.0 / np.sqrt(minimum.get_masses()), 3)
    samples = []
    for temperature in temperatures:
        for _ in range(n_per_temperature):
            q = rng.standard_normal(len(omega2)) * stdev * np.sqrt(temperature)
            displaced = provenance_copy(minimum, "normal_modes", temperature=float(temperature))
            displaced.positions += (inv_sqrt_mass * (q @ modes)).reshape(-1, 3)
            samples.append(displaced)
    return samples


# ----------------------------------------------------------------------------------------------
# Random displacements
# ----------------------------------------------------------------------------------------------
def random_displacements(
    atoms: Atoms, amplitudes: Sequence[float], n_per_amplitude: int, rng: np.random.Generator
) -> list[Atoms]:
    """Copies of ``atoms`` with every coordinate displaced by N(0, amplitude^2) (A), for each
    amplitude. Provenance: ``sampler="displaced"``, ``amplitude`` (the per-coordinate stdev)."""
    samples = []
    for amplitude in amplitudes:
        for _ in range(n_per_amplitude):
            displaced = provenance_copy(atoms, "displaced", amplitude=float(amplitude))
            displaced.positions += rng.normal(scale=amplitude, size=displaced.positions.shape)
            samples.append(displaced)
    return samples


# ----------------------------------------------------------------------------------------------
# Close contacts between molecules
# ----------------------------------------------------------------------------------------------
def closest_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest distance between a point of ``a`` [n,3] and one of ``b`` [m,3]."""
    return float(np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1).min()))


def place_at_contact(fixed: np.ndarray, mobile: np.ndarray, contact: float, direction: np.ndarray) -> np.ndarray:
    """``mobile`` [m,3] (centred on its centroid) moved along ``direction`` from the centroid of
    ``fixed`` until its closest atom is ``contact`` A from ``fixed``; bisection on the shift."""
    origin = fixed.mean(0)
    near, far = 0.0, 1.0
    while closest_distance(fixed, mobile + origin + far * direction) < contact:
        far *= 2
    for _ in range(60):  # to ~1e-15 of the bracket: the contact is met to round-off
        middle = 0.5 * (near + far)
        if closest_distance(fixed, mobile + origin + middle * direction) < contact:
            near = middle
        else:
            far = middle
    return mobile + origin + far * direction


def contact_pair(first: Atoms, second: Atoms, contact: float, rng: np.random.Generator) -> Atoms:
    """``first`` and a randomly rotated ``second`` in one non-periodic structure, ``second``
    approaching from a random direction until the closest pair of atoms is ``contact`` A apart.
    Provenance: ``sampler="contact"``, ``contact``, ``molecule`` = "first+second"."""
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    mobile = (second.positions - second.positions.mean(0)) @ random_rotation(rng).T
    positions = place_at_contact(first.positions, mobile, contact, direction)
    combined = Atoms(np.concatenate([first.numbers, second.numbers]), np.concatenate([first.positions, positions]))
    charges = np.concatenate([first.get_initial_charges(), second.get_initial_charges()])
    if charges.any():
        combined.set_initial_charges(charges)
    names = [a.info.get("molecule", a.get_chemical_formula()) for a in (first, second)]
    combined.info.update(sampler="contact", contact=float(contact), molecule="+".join(names))
    return combined


def contact_pairs(
    molecules: Sequence[Atoms], contacts: Sequence[float], n_per_contact: int, rng: np.random.Generator
) -> list[Atoms]:
    """For each contact distance, ``n_per_contact`` pairs of molecules drawn from ``molecules``
    (with repetition: dimers of one molecule included), each at that closest distance."""
    samples = []
    for contact in contacts:
        for _ in range(n_per_contact):
            first, second = rng.integers(len(molecules), size=2)
            samples.append(contact_pair(molecules[first], molecules[second], contact, rng))
    return samples


# ----------------------------------------------------------------------------------------------
# Compressed water, close hydrogens
# ----------------------------------------------------------------------------------------------
def check_water_order(box: Atoms, needed_by: str) -> None:
    """ValueError unless the box's atoms come O H H per molecule (molecule k: atoms 3k..3k+2)."""
    symbols = box.get_chemical_symbols()
    if len(box) % 3 or any(symbols[k : k + 3] != ["O", "H", "H"] for k in range(0, len(box), 3)):
        raise ValueError(
            f"{needed_by} needs a water box ordered O H H, O H H, ... (as structures.random_water_box makes it)"
        )


def compressed_water(box: Atoms, density_factors: Sequence[float]) -> list[Atoms]:
    """A periodic water box (atoms ordered O H H, molecules whole) at ``density_factor`` times its
    density: cell and oxygens scaled by factor^(-1/3), each hydrogen kept at its place relative to
    its oxygen, so molecules come closer without their bonds being squeezed.
    Provenance: ``sampler="compressed"``, ``density_factor``."""
    check_water_order(box, "compressed_water")
    samples = []
    for factor in density_factors:
        scale = factor ** (-1.0 / 3.0)
        squeezed = provenance_copy(box, "compressed", density_factor=float(factor))
        oxygens = box.positions[0::3]
        offsets = box.positions.reshape(-1, 3, 3) - oxygens[:, None, :]
        squeezed.positions = (oxygens[:, None, :] * scale + offsets).reshape(-1, 3)
        squeezed.set_cell(box.cell * scale, scale_atoms=False)
        samples.append(squeezed)
    return samples


def hydrogen_contacts(
    box: Atoms, distances: Sequence[float], rng: np.random.Generator, reach: float = 3.0, clearance: float = 0.9
) -> list[Atoms]:
    """For each distance, the water box (atoms O H H per molecule) with one pair of hydrogens of
    different molecules, drawn among those closer than ``reach``, brought to that distance by
    moving the second hydrogen's whole molecule along the pair's axis (minimum image); a draw that
    brings two other atoms of different molecules closer than ``clearance`` is drawn again.

    Student liquids reach such contacts (v1's came to 1.02 A) where the teacher pushes the two
    hydrogens apart, and nothing else in the data shows it. Moving whole molecules keeps the O-H
    bonds as they were, so the contact is the only thing out of the ordinary.
    Provenance: ``sampler="hh_contact"``, ``hh_distance``, ``hh_pair`` (the two atoms' indices)."""
    check_water_order(box, "hydrogen_contacts")
    d = box.get_all_distances(mic=True)
    molecule = np.arange(len(box)) // 3
    hydrogens = np.flatnonzero(box.numbers == 1)
    pairs = [(a, b) for a in hydrogens for b in hydrogens if molecule[a] < molecule[b] and d[a, b] < reach]
    if not pairs:
        raise ValueError(f"no two hydrogens of different molecules are closer than {reach} A in this box")
    samples = []
    for distance in distances:
        for _ in range(100):
            a, b = pairs[rng.integers(len(pairs))]
            axis = box.get_distance(a, b, mic=True, vector=True)
            moved = provenance_copy(box, "hh_contact", hh_distance=float(distance), hh_pair=[int(a), int(b)])
            moved.positions[molecule == molecule[b]] += axis * (distance / np.linalg.norm(axis) - 1.0)
            others = moved.get_all_distances(mic=True)
            others[[a, b], [b, a]] = np.inf
            if others[molecule[:, None] != molecule[None, :]].min() >= clearance:
                samples.append(moved)
                break
        else:
            raise RuntimeError(
                f"no pair of this box reaches {distance} A without other atoms closer than {clearance} A"
            )
    return samples
