"""Make the unseen-molecule benchmark: drug-like molecules that no shipped model trains on,
near their GFN2-xTB minimum and with large distortions, labelled by GFN2-xTB.

    OMP_NUM_THREADS=1 python examples/unseen_benchmark/make_benchmark.py

writes ``data/unseen.extxyz`` next to this script. For every molecule: 2 RDKit conformers, each
relaxed with the teacher; around each minimum 4 geometries from the classical normal-mode
distribution at 300 K (the teacher's Hessian) and 4 with every coordinate displaced by
N(0, a^2) for a = 0.03, 0.05 and 0.10 A. ``info["distortion"]`` says which ("300 K", "0.03 A",
...), ``info["molecule"]`` which molecule; every frame keeps its sampler's provenance.
Seeded and resumable (a rerun labels only what is missing); about 2 minutes on one core.
"""

import argparse
import time
from pathlib import Path

import numpy as np

from mlff_distiller.distill.distortions import hessian, normal_mode_samples, random_displacements, relax
from mlff_distiller.distill.label import label_structures
from mlff_distiller.distill.sampling import conformer_to_atoms, embed_conformers
from mlff_distiller.distill.teacher import make_teacher

TEACHER = "gfn2-xtb"
SEED = 0
# Never in a training set of the project (examples/default_model/make_dataset.py, and the v2
# molecule list checks against this one): amines, amides, sulfonamides, thioethers, halogens,
# esters, phenols, acids, nitriles, heteroaromatics.
UNSEEN_MOLECULES = {
    "lidocaine": "CCN(CC)CC(=O)NC1=C(C)C=CC=C1C",
    "hydrochlorothiazide": "NS(=O)(=O)C1=C(Cl)C=C2NCNS(=O)(=O)C2=C1",
    "methylparaben": "COC(=O)C1=CC=C(O)C=C1",
    "nicotinamide": "NC(=O)C1=CN=CC=C1",
    "methionine": "CSCC[C@H](N)C(=O)O",
    "4-fluorobenzonitrile": "N#CC1=CC=C(F)C=C1",
}
N_CONFORMERS = 2
PER_DISTORTION = 4
TEMPERATURE = 300.0
AMPLITUDES = (0.03, 0.05, 0.10)


def molecule_structures(name, smiles, teacher, rng):
    """Near-equilibrium and distorted geometries around each teacher-relaxed conformer."""
    mol = embed_conformers(smiles, N_CONFORMERS, SEED)
    structures = []
    for conformer in range(mol.GetNumConformers()):
        start = conformer_to_atoms(mol, conformer)
        start.info.update(molecule=name, smiles=smiles, conformer=conformer)
        minimum = relax(start, teacher)
        for atoms in normal_mode_samples(minimum, hessian(minimum, teacher), [TEMPERATURE], PER_DISTORTION, rng):
            atoms.info["distortion"] = f"{TEMPERATURE:.0f} K"
            structures.append(atoms)
        for atoms in random_displacements(minimum, AMPLITUDES, PER_DISTORTION, rng):
            atoms.info["distortion"] = f"{atoms.info['amplitude']:.2f} A"
            structures.append(atoms)
    return structures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=Path(__file__).parent / "data" / "unseen.extxyz")
    output = parser.parse_args().output
    teacher = make_teacher(TEACHER)
    for index, (name, smiles) in enumerate(UNSEEN_MOLECULES.items()):
        start = time.perf_counter()
        structures = molecule_structures(name, smiles, teacher, np.random.default_rng([SEED, index]))
        report = label_structures(structures, teacher, output, teacher_name=TEACHER, progress=False)
        print(f"{name}: {report.summary()} ({time.perf_counter() - start:.1f} s)", flush=True)
    print(f"wrote {output} ({output.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
