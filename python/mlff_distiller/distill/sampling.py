"""Cheap sampling of off-equilibrium geometries for the teacher to label.

The student must see distorted geometries, not only minima, to learn forces. We get them
without the teacher, from short molecular dynamics with cheap classical force fields:

* molecules from SMILES: RDKit builds conformers (ETKDG + MMFF94 optimisation), then ASE
  Langevin dynamics on the MMFF94 surface at a few temperatures; snapshots are taken
  `snapshot_interval` steps apart so that they are not near-copies of each other;
* liquid water: random boxes (``structures.random_water_box``) of flexible TIP3P water (ASE's TIP3P plus harmonic bonds and
  angles) run with ASE Langevin at 300-400 K; each snapshot is then slightly rattled.

Every function takes a seed and is deterministic. Every returned `Atoms` carries in `info`
where it came from (``molecule``, ``temperature``, ...) so that a data set can be analysed
afterwards; its momenta are removed and it has no constraints and no calculator attached.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.ff import ForceField
from ase.calculators.mixing import SumCalculator
from ase.calculators.tip3p import TIP3P, angleHOH, rOH
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, ZeroRotation
from ase.utils.ff import Angle, Bond

from ..structures import random_water_box, water_box_length

try:
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # ASE < 3.29 only has the older name
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

KCAL_PER_MOL = units.kcal / units.mol  # RDKit works in kcal/mol; ASE in eV


# ----------------------------------------------------------------------------- molecules


def molecule_from_smiles(smiles: str):
    """Parse `smiles` into an RDKit molecule with explicit hydrogens (ValueError if invalid)."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"RDKit cannot parse the SMILES {smiles!r}; check it for typos")
    return Chem.AddHs(mol)


def embed_conformers(smiles: str, n_conformers: int, seed: int):
    """RDKit molecule of `smiles` with `n_conformers` ETKDG conformers, each MMFF94-optimised."""
    from rdkit.Chem import AllChem

    mol = molecule_from_smiles(smiles)
    params = AllChem.ETKDGv3()
    params.randomSeed = seed  # makes the embedding deterministic
    conformer_ids = list(AllChem.EmbedMultipleConfs(mol, numConfs=n_conformers, params=params))
    if not conformer_ids:
        raise ValueError(f"RDKit could not embed 3D coordinates for the SMILES {smiles!r}")
    if not AllChem.MMFFHasAllMoleculeParams(mol):
        raise ValueError(f"MMFF94 has no parameters for the SMILES {smiles!r}")
    AllChem.MMFFOptimizeMoleculeConfs(mol, maxIters=2000)
    return mol


def conformer_to_atoms(mol, conformer_id: int) -> Atoms:
    """ASE Atoms of one RDKit conformer; formal charges become initial charges (xTB uses them)."""
    symbols = [atom.GetSymbol() for atom in mol.GetAtoms()]
    positions = mol.GetConformer(conformer_id).GetPositions()
    atoms = Atoms(symbols=symbols, positions=positions)
    formal_charges = [atom.GetFormalCharge() for atom in mol.GetAtoms()]
    if any(formal_charges):
        atoms.set_initial_charges(formal_charges)
    return atoms


class MMFFCalculator(Calculator):
    """ASE calculator for the RDKit MMFF94 force field of one molecule (fixed bonding).

    The RDKit force field object is built once and then evaluated at arbitrary positions,
    so this is cheap enough to drive thousands of MD steps.
    """

    implemented_properties = ["energy", "forces"]

    def __init__(self, mol, **kwargs):
        from rdkit.Chem import AllChem

        super().__init__(**kwargs)
        self._mol = mol  # the force field refers to the molecule: keep it alive
        properties = AllChem.MMFFGetMoleculeProperties(mol)
        self._force_field = AllChem.MMFFGetMoleculeForceField(mol, properties)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        flat_positions = self.atoms.positions.ravel().tolist()
        energy = self._force_field.CalcEnergy(flat_positions)
        gradient = np.asarray(self._force_field.CalcGrad(flat_positions)).reshape(-1, 3)
        self.results["energy"] = energy * KCAL_PER_MOL
        self.results["forces"] = -gradient * KCAL_PER_MOL


def run_langevin_snapshots(
    atoms: Atoms,
    temperature_K: float,
    n_snapshots: int,
    rng: np.random.Generator,
    timestep_fs: float,
    equilibration_steps: int,
    snapshot_interval: int,
    friction_per_fs: float = 0.02,
) -> list[Atoms]:
    """Langevin MD on `atoms` (calculator attached); copies taken every `snapshot_interval` steps.

    The run starts from Maxwell-Boltzmann velocities at `temperature_K` and is equilibrated
    for `equilibration_steps` before the first snapshot. Snapshots keep positions and cell only.
    """
    thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)
    Stationary(atoms)  # no drift of the whole system
    if not atoms.pbc.any():
        ZeroRotation(atoms)
    dynamics = Langevin(
        atoms,
        timestep=timestep_fs * units.fs,
        temperature_K=temperature_K,
        friction=friction_per_fs / units.fs,
        fixcm=False,
        rng=rng,
    )
    dynamics.run(equilibration_steps)
    snapshots = []
    for _ in range(n_snapshots):
        dynamics.run(snapshot_interval)
        snapshots.append(geometry_copy(atoms))
    return snapshots


def geometry_copy(atoms: Atoms) -> Atoms:
    """Copy of `atoms` with what the teacher needs: no calculator, momenta or constraints."""
    copy = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    if atoms.has("initial_charges"):  # formal charges of charged molecules
        copy.set_initial_charges(atoms.get_initial_charges())
    return copy


def sample_molecule(
    smiles: str,
    name: str | None = None,
    n_conformers: int = 3,
    temperatures: Sequence[float] = (300.0, 600.0, 900.0),
    snapshots_per_run: int = 15,
    seed: int = 0,
    timestep_fs: float = 0.5,
    equilibration_steps: int = 200,
    snapshot_interval: int = 40,
) -> list[Atoms]:
    """Off-equilibrium geometries of the molecule `smiles` from MMFF94 Langevin dynamics.

    One MD run per (conformer, temperature) pair, each giving `snapshots_per_run` snapshots:
    n_conformers * len(temperatures) * snapshots_per_run structures in all. High temperatures
    (e.g. 900 K) push bonds and angles further from equilibrium than room temperature would,
    which the student needs to learn forces away from minima.
    """
    mol = embed_conformers(smiles, n_conformers, seed)
    name = name or smiles
    structures = []
    for conformer_index, conformer_id in enumerate(c.GetId() for c in mol.GetConformers()):
        for temperature in temperatures:
            # One generator per run, seeded from everything identifying the run.
            rng = np.random.default_rng([seed, conformer_index, int(round(temperature))])
            atoms = conformer_to_atoms(mol, conformer_id)
            atoms.calc = MMFFCalculator(mol)
            snapshots = run_langevin_snapshots(
                atoms, temperature, snapshots_per_run, rng, timestep_fs, equilibration_steps, snapshot_interval
            )
            for snapshot_index, snapshot in enumerate(snapshots):
                snapshot.info.update(
                    molecule=name,
                    smiles=smiles,
                    conformer=conformer_index,
                    temperature=float(temperature),
                    snapshot=snapshot_index,
                )
            structures.extend(snapshots)
    return structures


# ----------------------------------------------------------------------------- liquid water


# CHARMM's flexible TIP3P: harmonic O-H bonds and H-O-H angle on top of rigid TIP3P's
# intermolecular terms, E = K_b (r - r0)^2 + K_a (theta - theta0)^2 with r0, theta0 of TIP3P.
FLEXIBLE_TIP3P_BOND_K = 450.0  # kcal/mol/A^2
FLEXIBLE_TIP3P_ANGLE_K = 55.0  # kcal/mol/rad^2


def flexible_tip3p(n_molecules: int, box_length: float) -> SumCalculator:
    """Flexible TIP3P for `n_molecules` waters ordered O H H: ASE's TIP3P + harmonic bonds/angles.

    Flexible rather than rigid water because the student must learn intramolecular forces,
    and because RATTLE-constrained MD in ASE (FixBondLengths) costs ~20x more per step.
    TIP3P's own terms are intermolecular only, so the two parts do not double count.
    """
    # ASE's Bond/Angle use E = k/2 (x - x0)^2, hence the factor 2.
    bond_k = 2 * FLEXIBLE_TIP3P_BOND_K * KCAL_PER_MOL
    angle_k = 2 * FLEXIBLE_TIP3P_ANGLE_K * KCAL_PER_MOL
    bonds = [Bond(3 * m, 3 * m + h, bond_k, rOH) for m in range(n_molecules) for h in (1, 2)]
    angles = [Angle(3 * m + 1, 3 * m, 3 * m + 2, angle_k, np.radians(angleHOH)) for m in range(n_molecules)]
    # TIP3P's Coulomb cutoff (default 5 A) must not exceed half the box.
    cutoff = min(5.0, box_length / 2 - 0.01)
    return SumCalculator([TIP3P(rc=cutoff, width=min(1.0, cutoff / 4)), ForceField(bonds=bonds, angles=angles)])


def sample_water_boxes(
    n_snapshots: int,
    n_molecules: int = 27,
    temperatures: Sequence[float] = (300.0, 350.0, 400.0),
    density_g_cm3: float = 1.0,
    seed: int = 0,
    rattle_stdev: float = 0.02,
    timestep_fs: float = 0.5,
    equilibration_steps: int = 2000,
    snapshot_interval: int = 60,
) -> list[Atoms]:
    """`n_snapshots` liquid water boxes from flexible-TIP3P Langevin MD, spread over `temperatures`.

    Each temperature runs its own random box, equilibrated for `equilibration_steps` (1 ps by
    default) before snapshots are taken every `snapshot_interval` steps (30 fs). Each snapshot
    is finally rattled (Gaussian, `rattle_stdev` A per coordinate) to widen the spread of
    bond lengths a little beyond what classical MD at these temperatures visits.
    """
    box_length = water_box_length(n_molecules, density_g_cm3)
    counts = np.full(len(temperatures), n_snapshots // len(temperatures))
    counts[: n_snapshots % len(temperatures)] += 1  # spread the remainder over the first runs
    structures = []
    for run_index, (temperature, count) in enumerate(zip(temperatures, counts)):
        if count == 0:
            continue
        rng = np.random.default_rng([seed, run_index, int(round(temperature))])
        atoms = random_water_box(n_molecules, density_g_cm3, seed=int(rng.integers(2**31)))
        atoms.calc = flexible_tip3p(n_molecules, box_length)
        snapshots = run_langevin_snapshots(
            atoms, temperature, int(count), rng, timestep_fs, equilibration_steps, snapshot_interval
        )
        for snapshot_index, snapshot in enumerate(snapshots):
            snapshot.positions += rng.normal(scale=rattle_stdev, size=snapshot.positions.shape)
            snapshot.wrap()  # tidy for downstream tools; periodic energies do not change
            snapshot.info.update(
                molecule=f"water{n_molecules}", temperature=float(temperature), snapshot=snapshot_index
            )
        structures.extend(snapshots)
    return structures
