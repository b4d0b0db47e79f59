"""Samplers beyond MD (distortions.py): right statistics, exact geometry, provenance in info."""

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import molecule
from ase.calculators.calculator import Calculator, all_changes

from mlff_distiller.distill.distortions import (
    CM_TO_ASE_FREQUENCY,
    closest_distance,
    compressed_water,
    contact_pairs,
    hessian,
    hydrogen_contacts,
    normal_mode_samples,
    random_displacements,
    relax,
    vibrational_modes,
)
from mlff_distiller.structures import random_water_box


class Springs(Calculator):
    """Harmonic springs k/2 (|r_ij| - r0_ij)^2 between every pair, at rest at the distances of
    the structure it is made for: a surface whose minimum and rigid modes are known exactly."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, atoms, k=30.0):
        super().__init__()
        self.k, self.rest = k, atoms.get_all_distances()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        r = self.atoms.positions[None, :, :] - self.atoms.positions[:, None, :]  # r[i, j] = x_j - x_i
        d = np.linalg.norm(r, axis=-1) + np.eye(len(self.atoms))
        stretch = (d - self.rest) * (1 - np.eye(len(self.atoms)))
        self.results["energy"] = 0.25 * self.k * (stretch**2).sum()
        self.results["forces"] = self.k * ((stretch / d)[:, :, None] * r).sum(1)


def springs(atoms):
    return Springs(atoms)


def methane():
    atoms = molecule("CH4")
    atoms.info["molecule"] = "methane"
    return atoms


def test_relax_reaches_the_minimum_and_says_when_it_does_not():
    atoms = methane()
    calc = springs(atoms)
    start = atoms.copy()
    start.positions += np.random.default_rng(0).normal(scale=0.05, size=start.positions.shape)
    relaxed = relax(start, calc)
    relaxed.calc = calc
    assert np.abs(relaxed.get_forces()).max() < 0.01
    assert relaxed.info["molecule"] == "methane" and start.calc is None
    with pytest.raises(RuntimeError, match="did not reach fmax .* in 1 steps"):
        relax(start, calc, steps=1)


def test_vibrational_modes_drop_the_rigid_motions():
    atoms = methane()
    omega2, modes = vibrational_modes(atoms, hessian(atoms, springs(atoms)))
    assert omega2.shape == (9,) and modes.shape == (9, 15)
    assert (omega2 > 1e-3).all()
    linear = Atoms("CO2", positions=[[0, 0, 0], [1.16, 0, 0], [-1.16, 0, 0]])
    assert vibrational_modes(linear, hessian(linear, springs(linear)))[0].shape == (4,)


def test_normal_mode_samples_hold_kT_over_2_per_mode_and_do_not_move_the_centre_of_mass():
    atoms = methane()
    calc = springs(atoms)
    H = hessian(atoms, calc)
    omega2, _ = vibrational_modes(atoms, H)
    assert np.sqrt(omega2.min()) / CM_TO_ASE_FREQUENCY > 200  # no mode below the sampling floor
    temperature = 30.0
    samples = normal_mode_samples(atoms, H, [temperature, 1500.0], 400, np.random.default_rng(0))
    cold = [s for s in samples if s.info["temperature"] == temperature]
    assert len(cold) == 400 and all(
        s.info["sampler"] == "normal_modes" and s.info["molecule"] == "methane" for s in samples
    )
    energies = []
    for s in cold:
        s.calc = calc
        energies.append(s.get_potential_energy())
    expected = 9 * units.kB * temperature / 2
    assert abs(np.mean(energies) / expected - 1) < 0.1
    masses = atoms.get_masses()
    for s in samples[::50]:
        assert np.abs(masses @ (s.positions - atoms.positions)).max() < 1e-10
    hot = [s for s in samples if s.info["temperature"] == 1500.0]
    spread = np.std([s.positions - atoms.positions for s in hot])
    assert spread / np.std([s.positions - atoms.positions for s in cold]) == pytest.approx(np.sqrt(50), rel=0.1)


def test_random_displacements_have_the_stated_amplitude():
    atoms = methane()
    samples = random_displacements(atoms, [0.03, 0.1], 200, np.random.default_rng(1))
    for amplitude in (0.03, 0.1):
        chosen = [s for s in samples if s.info["amplitude"] == amplitude]
        assert len(chosen) == 200 and all(s.info["sampler"] == "displaced" for s in chosen)
        displacement = np.concatenate([s.positions - atoms.positions for s in chosen])
        assert np.std(displacement) == pytest.approx(amplitude, rel=0.05)


def test_contact_pairs_meet_the_contact_and_keep_each_molecule_rigid():
    water, methanol = molecule("H2O"), molecule("CH3OH")
    water.info["molecule"], methanol.info["molecule"] = "water", "methanol"
    pairs = contact_pairs([water, methanol], [1.2, 1.8, 2.5], 5, np.random.default_rng(2))
    assert len(pairs) == 15
    for pair in pairs:
        first, second = pair.info["molecule"].split("+")
        n = len(water) if first == "water" else len(methanol)
        a, b = pair.positions[:n], pair.positions[n:]
        assert closest_distance(a, b) == pytest.approx(pair.info["contact"], abs=1e-9)
        reference = water if second == "water" else methanol
        assert np.allclose(pair[n:].get_all_distances(), reference.get_all_distances(), atol=1e-10)
        assert pair.info["sampler"] == "contact" and not pair.pbc.any()


def test_compressed_water_keeps_molecules_and_scales_the_density():
    box = random_water_box(8, 1.0, seed=0)
    box.info["molecule"] = "water8"
    squeezed = compressed_water(box, [1.2, 1.5])
    for s, factor in zip(squeezed, (1.2, 1.5)):
        assert box.get_volume() / s.get_volume() == pytest.approx(factor, rel=1e-12)
        assert np.allclose(s.positions[1::3] - s.positions[0::3], box.positions[1::3] - box.positions[0::3])
        assert s.info == {"molecule": "water8", "sampler": "compressed", "density_factor": factor}
        oo = s[0::3].get_all_distances(mic=True)
        assert oo[oo > 0].min() < box[0::3].get_all_distances(mic=True)[oo > 0].min()
    with pytest.raises(ValueError, match="ordered O H H"):
        compressed_water(box[1:], [1.2])


def test_hydrogen_contacts_bring_one_pair_of_hydrogens_to_each_distance():
    box = random_water_box(27, 1.0, seed=3)
    box.info["molecule"] = "water27"
    distances = [0.9, 1.1, 1.4]
    samples = hydrogen_contacts(box, distances, np.random.default_rng(0))
    for sample, distance in zip(samples, distances):
        a, b = sample.info["hh_pair"]
        assert sample.numbers[a] == sample.numbers[b] == 1 and a // 3 != b // 3
        assert sample.get_distance(a, b, mic=True) == pytest.approx(distance, abs=1e-12)
        moved = np.flatnonzero(np.abs(sample.positions - box.positions).max(axis=1) > 1e-12)
        assert moved.tolist() == [b // 3 * 3, b // 3 * 3 + 1, b // 3 * 3 + 2]  # b's molecule, rigidly
        shift = sample.positions[moved] - box.positions[moved]
        assert np.allclose(shift, shift[0], atol=1e-12)
        others = sample.get_all_distances(mic=True)
        others[[a, b], [b, a]] = np.inf
        molecule = np.arange(len(sample)) // 3
        assert others[molecule[:, None] != molecule[None, :]].min() >= 0.9
        assert sample.info["sampler"] == "hh_contact" and sample.info["molecule"] == "water27"
    with pytest.raises(ValueError, match="ordered O H H"):
        hydrogen_contacts(box[1:], [1.0], np.random.default_rng(0))
    with pytest.raises(ValueError, match="no two hydrogens"):
        hydrogen_contacts(box, [1.0], np.random.default_rng(0), reach=0.5)
