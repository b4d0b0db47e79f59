"""Liquid water with the intermolecular H...H contacts that v1 makes, labelled by GFN2-xTB: the
measure (and later the data) for the next stage of v3 (issue 24).

    OMP_NUM_THREADS=1 python examples/default_model_v3/water_contacts.py [--snapshots 20]

64 waters (``random_water_box``, seed 0) run with v1 in ASE (Langevin, 300 K, 0.5 fs): 1,000 steps,
then one snapshot every 50 steps. Each snapshot is labelled with GFN2-xTB and written, with its
shortest intermolecular H...H distance in ``info["hh_inter_min"]``, to
``runs/default_model_v3/water_contacts.extxyz`` (git-ignored; a rerun labels only what is missing).
Then v1, v2 and v3 are evaluated on them: force MAE, and per snapshot the force pushing its
closest H...H pair apart along the pair's axis under each model and the teacher (negative: pulling).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import ase.io
import numpy as np
from ase import units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

from mlff_distiller.distill.evaluate import evaluate_file
from mlff_distiller.distill.teacher import make_teacher
from mlff_distiller.model.calculator import StudentCalculator
from mlff_distiller.structures import closest_intermolecular_hh, pair_push, random_water_box

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "runs" / "default_model_v3" / "water_contacts.extxyz"
MODELS = {"v1": "default", "v2": "default_v2", "v3": "default_v3"}
SEED = 0


def v1_snapshots(count: int) -> list:
    atoms = random_water_box(64, 1.0, seed=SEED)
    atoms.calc = StudentCalculator("default")
    rng = np.random.default_rng(SEED)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=rng)
    Stationary(atoms)
    dynamics = Langevin(atoms, 0.5 * units.fs, temperature_K=300, friction=0.01 / units.fs, fixcm=False, rng=rng)
    dynamics.run(1000)
    snapshots = []
    for _ in range(count):
        dynamics.run(50)
        snapshot = atoms.copy()
        snapshot.info.update(sampler="v1 liquid, 300 K", hh_inter_min=round(closest_intermolecular_hh(atoms)[2], 4))
        snapshots.append(snapshot)
    return snapshots


def labelled(count: int) -> list:
    done = list(ase.io.iread(OUTPUT)) if OUTPUT.exists() else []
    if len(done) < count:
        teacher = make_teacher("gfn2-xtb")
        for snapshot in v1_snapshots(count)[len(done) :]:
            snapshot.calc = teacher
            snapshot.get_forces()
            ase.io.write(OUTPUT, snapshot, format="extxyz", append=True)
            print(f"labelled a snapshot with H...H {snapshot.info['hh_inter_min']:.3f} A", flush=True)
        done = list(ase.io.iread(OUTPUT))
    return done[:count]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--snapshots", type=int, default=20)
    args = parser.parse_args()
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    structures = labelled(args.snapshots)
    for name, model in MODELS.items():
        metrics = evaluate_file(model, OUTPUT)
        print(
            f"{name}: force MAE {metrics['force_mae_meV_per_A']:.1f} meV/A, largest error "
            f"{metrics['force_max_error_meV_per_A'] / 1000:.2f} eV/A over {len(structures)} snapshots",
            flush=True,
        )
    calculators = {name: StudentCalculator(model) for name, model in MODELS.items()}
    print("H...H (A)  push apart (eV/A): " + "  ".join(f"{n:>6}" for n in ["teacher", *MODELS]))
    for atoms in structures:
        a, b, distance = closest_intermolecular_hh(atoms)
        pushes = [pair_push(atoms, atoms.get_forces(), a, b)]
        for calculator in calculators.values():
            probe = atoms.copy()
            probe.calc = calculator
            pushes.append(pair_push(atoms, probe.get_forces(), a, b))
        print(f"{distance:9.3f}  " + " " * 19 + "  ".join(f"{p:+6.2f}" for p in pushes))


if __name__ == "__main__":
    main()
