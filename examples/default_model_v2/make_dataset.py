"""Make the GFN2-xTB data that the candidate v2 default model adds to v1's, reproducibly.

    OMP_NUM_THREADS=1 python examples/default_model_v2/make_dataset.py     # ~15 min on one core

writes ``runs/default_model_v2/extra.extxyz`` (git-ignored, ~10 MB; training reads it together
with v1's ``examples/default_model/data/train.extxyz``):

* 54 more drug-like molecules and fragments (amines, amides, heteroaromatics, sulfonamides,
  thioethers, halogenated aromatics, acids, esters, alcohols, nitriles) sampled by MMFF94 MD at
  300/600/900 K as in v1;
* for those and v1's 12 molecules: 2 conformers relaxed with the teacher, around each minimum
  the classical normal-mode distribution at 300, 600, 1000 and 1500 K (teacher Hessian) and
  random displacements of 0.02, 0.05, 0.08 and 0.12 A per coordinate;
* pairs of small molecules (water, methanol, methylamine, acetic acid, acetamide, benzene,
  pyridine, DMSO, ...) at closest contacts of 1.3 to 3.0 A;
* v1's kind of liquid water boxes compressed to 1.15 and 1.3 times their density.

No molecule of the unseen benchmark (``examples/unseen_benchmark``) nor phenacetin (v1's held-out
molecule) is used; the script stops if one is. Seeded and resumable: a rerun labels only what is
missing. Relaxations that do not converge are counted and skipped.
"""

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np
from ase.build import molecule as ase_molecule

from mlff_distiller.distill.distortions import (
    compressed_water,
    contact_pairs,
    hessian,
    normal_mode_samples,
    random_displacements,
    relax,
)
from mlff_distiller.distill.label import label_structures
from mlff_distiller.distill.sampling import conformer_to_atoms, embed_conformers, sample_molecule
from mlff_distiller.distill.teacher import make_teacher
from mlff_distiller.structures import random_water_box

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def example_script(relative_path: str):
    """Another example script as a module (they share file names, so not through sys.path)."""
    path = HERE.parent / relative_path
    spec = importlib.util.spec_from_file_location(f"example_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


V1 = example_script("default_model/make_dataset.py")
TRAINING_MOLECULES, HELDOUT_MOLECULE, MOLECULE_SAMPLING = (
    V1.TRAINING_MOLECULES,
    V1.HELDOUT_MOLECULE,
    V1.MOLECULE_SAMPLING,
)
UNSEEN_MOLECULES = example_script("unseen_benchmark/make_benchmark.py").UNSEEN_MOLECULES

TEACHER = "gfn2-xtb"
SEED = 0
NEW_MOLECULES = {
    # amines
    "methylamine": "CN",
    "piperidine": "C1CCNCC1",
    "morpholine": "C1COCCN1",
    "aniline": "NC1=CC=CC=C1",
    "N,N-dimethylaniline": "CN(C)C1=CC=CC=C1",
    "piperazine": "C1CNCCN1",
    # amides
    "acetamide": "CC(N)=O",
    "dimethylformamide": "CN(C)C=O",
    "benzamide": "NC(=O)C1=CC=CC=C1",
    "2-pyrrolidone": "O=C1CCCN1",
    "urea": "NC(N)=O",
    "N-acetylglycine": "CC(=O)NCC(=O)O",
    # heteroaromatics
    "pyridine": "C1=CC=NC=C1",
    "pyrimidine": "C1=CN=CN=C1",
    "imidazole": "C1=CN=CN1",
    "pyrazole": "C1=CC=NN1",
    "indole": "C1=CC=C2NC=CC2=C1",
    "thiophene": "C1=CSC=C1",
    "furan": "C1=COC=C1",
    "thiazole": "C1=CSC=N1",
    "oxazole": "C1=COC=N1",
    "quinoline": "C1=CC=C2N=CC=CC2=C1",
    "4-methylimidazole": "CC1=CN=CN1",
    # sulfonamides, thioethers, sulfoxides
    "methanesulfonamide": "CS(N)(=O)=O",
    "N-methylbenzenesulfonamide": "CNS(=O)(=O)C1=CC=CC=C1",
    "dimethyl sulfide": "CSC",
    "thioanisole": "CSC1=CC=CC=C1",
    "dimethyl sulfoxide": "CS(C)=O",
    "tetrahydrothiophene": "C1CCSC1",
    "thiazolidine": "C1CSCN1",
    # halogenated
    "fluorobenzene": "FC1=CC=CC=C1",
    "chlorobenzene": "ClC1=CC=CC=C1",
    "4-chloroaniline": "NC1=CC=C(Cl)C=C1",
    "2,4-difluorotoluene": "CC1=C(F)C=C(F)C=C1",
    "benzotrifluoride": "FC(F)(F)C1=CC=CC=C1",
    "2-chloropyridine": "ClC1=CC=CC=N1",
    "chloroacetamide": "NC(=O)CCl",
    "2-fluoroethanol": "OCCF",
    "dichloromethane": "ClCCl",
    # acids
    "acetic acid": "CC(=O)O",
    "benzoic acid": "OC(=O)C1=CC=CC=C1",
    "glycine": "NCC(=O)O",
    "salicylic acid": "OC(=O)C1=CC=CC=C1O",
    # esters
    "methyl acetate": "COC(C)=O",
    "ethyl benzoate": "CCOC(=O)C1=CC=CC=C1",
    "gamma-butyrolactone": "O=C1CCCO1",
    # alcohols, ketones
    "methanol": "CO",
    "isopropanol": "CC(C)O",
    "phenol": "OC1=CC=CC=C1",
    "ethylene glycol": "OCCO",
    "acetone": "CC(C)=O",
    # nitriles
    "acetonitrile": "CC#N",
    "benzonitrile": "N#CC1=CC=CC=C1",
    "3-hydroxypropionitrile": "OCCC#N",
}
CONTACT_PARTNERS = (
    "water",
    "methanol",
    "methylamine",
    "acetic acid",
    "acetamide",
    "benzene",
    "pyridine",
    "dimethyl sulfoxide",
    "acetonitrile",
    "fluorobenzene",
    "chlorobenzene",
    "imidazole",
)
N_CONFORMERS = 2
TEMPERATURES = (300.0, 600.0, 1000.0, 1500.0)
PER_TEMPERATURE = 4
AMPLITUDES = (0.02, 0.05, 0.08, 0.12)
PER_AMPLITUDE = 3
CONTACTS = (1.3, 1.5, 1.7, 2.0, 2.4, 3.0)
PER_CONTACT = 60
WATER_BOXES, WATER_MOLECULES, DENSITY_FACTORS = 15, 27, (1.15, 1.3)


def check_unseen_stays_unseen():
    """Stop if a molecule of the unseen benchmark or v1's held-out one is in the training lists."""
    from rdkit import Chem

    def canonical(smiles):
        return Chem.MolToSmiles(Chem.MolFromSmiles(smiles), isomericSmiles=False)

    training = {canonical(s): n for n, s in {**TRAINING_MOLECULES, **NEW_MOLECULES}.items()}
    for name, smiles in {**UNSEEN_MOLECULES, HELDOUT_MOLECULE[0]: HELDOUT_MOLECULE[1]}.items():
        if canonical(smiles) in training:
            raise SystemExit(f"{name} must stay unseen but is in the training list as {training[canonical(smiles)]}")


def around_minima(name, smiles, teacher, rng):
    """Normal-mode and displacement samples around each teacher-relaxed conformer; a conformer
    whose relaxation fails is reported and skipped."""
    mol = embed_conformers(smiles, N_CONFORMERS, SEED)
    structures, skipped = [], 0
    for conformer in range(mol.GetNumConformers()):
        start = conformer_to_atoms(mol, conformer)
        start.info.update(molecule=name, smiles=smiles, conformer=conformer)
        try:
            minimum = relax(start, teacher)
        except RuntimeError as exc:
            print(f"  skipped conformer {conformer} of {name}: {exc}", flush=True)
            skipped += 1
            continue
        structures += normal_mode_samples(minimum, hessian(minimum, teacher), TEMPERATURES, PER_TEMPERATURE, rng)
        structures += random_displacements(minimum, AMPLITUDES, PER_AMPLITUDE, rng)
    return structures, skipped


def small_molecule(name):
    smiles = {**TRAINING_MOLECULES, **NEW_MOLECULES}.get(name)
    if smiles is None:  # water
        atoms = ase_molecule("H2O")
    else:
        mol = embed_conformers(smiles, 1, SEED)
        atoms = conformer_to_atoms(mol, 0)
    atoms.info["molecule"] = name
    return atoms


def label(name, structures, teacher, path):
    start = time.perf_counter()
    report = label_structures(structures, teacher, path, teacher_name=TEACHER, progress=False)
    print(f"{name}: {report.summary()} ({time.perf_counter() - start:.1f} s)", flush=True)
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "runs" / "default_model_v2" / "extra.extxyz")
    output = parser.parse_args().output
    check_unseen_stays_unseen()
    teacher = make_teacher(TEACHER)
    start, failed, skipped = time.perf_counter(), 0, 0
    molecules = {**TRAINING_MOLECULES, **NEW_MOLECULES}
    for index, (name, smiles) in enumerate(molecules.items()):
        structures, skipped_here = around_minima(name, smiles, teacher, np.random.default_rng([SEED, index]))
        skipped += skipped_here
        if name in NEW_MOLECULES:
            structures += sample_molecule(smiles, name=name, seed=SEED, **MOLECULE_SAMPLING)[::9]
        failed += label(f"[{index + 1}/{len(molecules)}] {name}", structures, teacher, output).failed
    partners = [small_molecule(name) for name in CONTACT_PARTNERS]
    pairs = contact_pairs(partners, CONTACTS, PER_CONTACT, np.random.default_rng([SEED, 1000]))
    failed += label("molecule pairs at close contact", pairs, teacher, output).failed
    boxes = []
    for k in range(WATER_BOXES):
        box = random_water_box(WATER_MOLECULES, 1.0, seed=SEED + k)
        box.info["molecule"] = f"water{WATER_MOLECULES}"
        boxes += compressed_water(box, DENSITY_FACTORS)
    failed += label("compressed water", boxes, teacher, output).failed
    print(
        f"done in {time.perf_counter() - start:.0f} s; teacher failed on {failed} structures, "
        f"{skipped} relaxations skipped; {output}"
    )


if __name__ == "__main__":
    main()
