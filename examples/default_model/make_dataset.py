"""Make the GFN2-xTB training set of the shipped default model, exactly and reproducibly.

    OMP_NUM_THREADS=1 python examples/default_model/make_dataset.py

writes, next to this script,

* ``data/train.extxyz``: 12 small drug-like molecules (H, C, N, O, F, S, Cl), 135 off-equilibrium
  geometries each (3 RDKit conformers x MMFF94 MD at 300/600/900 K x 15 snapshots), and
  150 periodic liquid water boxes of 27 molecules (81 atoms) from flexible-TIP3P MD at 300-400 K;
* ``data/heldout_molecule.extxyz``: phenacetin, sampled the same way but never trained on,
  to measure how the model transfers to an unseen molecule.

Everything is seeded, so a rerun gives the same structures; it is also resumable: if the run is
interrupted, start it again and it labels only what is missing. On one core it takes about
13 minutes: ~3 minutes of water MD, then GFN2-xTB at ~0.02 s per molecule and ~3-3.6 s per
water box (the water boxes are 95% of the teacher time).
"""

import argparse
import time
from collections import Counter
from pathlib import Path

import ase.io

from mlff_distiller.distill.label import label_structures
from mlff_distiller.distill.sampling import sample_molecule, sample_water_boxes
from mlff_distiller.distill.teacher import make_teacher
from mlff_distiller.structures import ASPIRIN_SMILES

TEACHER = "gfn2-xtb"
SEED = 0

# Small drug-like molecules and common drug fragments; F, S and Cl appear in a few of them so
# that the model knows these elements too.
TRAINING_MOLECULES = {
    "aspirin": ASPIRIN_SMILES,
    "paracetamol": "CC(=O)NC1=CC=C(O)C=C1",
    "caffeine": "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
    "ibuprofen": "CC(C)CC1=CC=C(C=C1)C(C)C(=O)O",
    "nicotine": "CN1CCC[C@H]1C1=CN=CC=C1",
    "ethanol": "CCO",
    "benzene": "C1=CC=CC=C1",
    "N-methylacetamide": "CNC(C)=O",  # the peptide bond
    "5-fluorouracil": "O=C1NC=C(F)C(=O)N1",  # F
    "sulfanilamide": "NC1=CC=C(C=C1)S(N)(=O)=O",  # S (sulfonamide)
    "captopril": "C[C@H](CS)C(=O)N1CCC[C@H]1C(=O)O",  # S (thiol)
    "chlorzoxazone": "O=C1NC2=CC(Cl)=CC=C2O1",  # Cl
}
# Left out of training entirely: close in chemistry to paracetamol but a different molecule.
HELDOUT_MOLECULE = ("phenacetin", "CCOC1=CC=C(C=C1)NC(C)=O")

# 3 conformers x 3 temperatures x 15 snapshots = 135 structures per molecule.
MOLECULE_SAMPLING = dict(n_conformers=3, temperatures=(300.0, 600.0, 900.0), snapshots_per_run=15)
WATER_BOXES = 150
WATER_MOLECULES_PER_BOX = 27
WATER_TEMPERATURES = (300.0, 350.0, 400.0)


def label_group(name, structures, teacher, path):
    """Label one group of structures (resumably) and print how long the teacher took."""
    start = time.perf_counter()
    report = label_structures(structures, teacher, path, teacher_name=TEACHER)
    seconds = time.perf_counter() - start
    timing = f"{seconds:.1f} s"
    if report.labelled:
        timing += f" ({seconds / report.labelled:.3f} s per new structure)"
    print(f"{name}: {report.summary()}; {timing}", flush=True)
    if report.failed:
        for label_id, reason in report.failures:
            print(f"  failed {label_id}: {reason}")
    return report


def describe(path):
    """Print what an extxyz file holds: structures per molecule, elements, size."""
    frames = ase.io.read(path, ":")
    per_molecule = Counter(atoms.info.get("molecule", "?") for atoms in frames)
    elements = sorted({symbol for atoms in frames for symbol in atoms.get_chemical_symbols()})
    periodic = sum(atoms.pbc.all() for atoms in frames)
    print(
        f"\n{path}: {len(frames)} structures, {sum(len(a) for a in frames)} atoms, "
        f"{periodic} periodic, elements {' '.join(elements)}, "
        f"{path.stat().st_size / 1e6:.1f} MB"
    )
    for molecule, count in per_molecule.items():
        print(f"  {molecule:20s} {count}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "data")
    out_dir = parser.parse_args().out_dir
    train_path = out_dir / "train.extxyz"
    heldout_path = out_dir / "heldout_molecule.extxyz"
    teacher = make_teacher(TEACHER)
    start = time.perf_counter()

    for name, smiles in TRAINING_MOLECULES.items():
        structures = sample_molecule(smiles, name=name, seed=SEED, **MOLECULE_SAMPLING)
        label_group(name, structures, teacher, train_path)

    print("sampling water boxes (flexible TIP3P MD, a few minutes)...", flush=True)
    water = sample_water_boxes(
        WATER_BOXES, n_molecules=WATER_MOLECULES_PER_BOX, temperatures=WATER_TEMPERATURES, seed=SEED
    )
    label_group(f"water ({WATER_MOLECULES_PER_BOX} molecules)", water, teacher, train_path)

    name, smiles = HELDOUT_MOLECULE
    structures = sample_molecule(smiles, name=name, seed=SEED, **MOLECULE_SAMPLING)
    label_group(f"{name} (held out)", structures, teacher, heldout_path)

    print(f"\ntotal time {time.perf_counter() - start:.0f} s")
    describe(train_path)
    describe(heldout_path)


if __name__ == "__main__":
    main()
