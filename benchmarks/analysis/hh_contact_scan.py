"""The closest intermolecular H...H pair of liquid water equilibrated with v1 (issue 24): how hard
v1, v2 and GFN2-xTB push its two hydrogens apart where they are, and the energy against the pair's
distance, the second hydrogen's whole molecule moved rigidly along the pair's axis, the rest of the
box held fixed.

    python benchmarks/analysis/hh_contact_scan.py [--out FILE.json]

The state is water_nve_roughness.py's (64 waters, 0.5 ps of v1 Langevin at 300 K). The two
molecules stay whole (moving the hydrogens alone would stretch or squeeze their O-H bonds, which
would swamp the contact); energies are relative to the farthest point of the scan. First, the shortest intermolecular H...H distance of the starting
boxes ``random_water_box(64, 1.0, seed)`` for seeds 0-11 (seed 0 is ``inputs/water/water192.data``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import MODELS, add_model_option, register_models  # noqa: E402
from water_nve_roughness import contacts, equilibrated  # noqa: E402

from mlff_distiller.distill.teacher import make_teacher  # noqa: E402
from mlff_distiller.model.calculator import StudentCalculator  # noqa: E402
from mlff_distiller.structures import closest_intermolecular_hh, pair_push, random_water_box  # noqa: E402

DISTANCES = np.round(np.arange(0.8, 2.01, 0.1), 2)


def scan(atoms, a: int, b: int, calculators: dict) -> dict:
    """Energies with atom b's molecule translated so that |r_ab| takes each of ``DISTANCES``."""
    axis = atoms.get_distance(a, b, mic=True, vector=True)
    unit = axis / np.linalg.norm(axis)
    molecule_b = slice(b // 3 * 3, b // 3 * 3 + 3)  # atoms are O H H per molecule
    energies = {name: [] for name in calculators}
    for distance in DISTANCES:
        moved = atoms.copy()
        moved.positions[molecule_b] += unit * (distance - np.linalg.norm(axis))
        for name, calculator in calculators.items():
            moved.calc = calculator
            energies[name].append(moved.get_potential_energy())
    return {name: (np.array(e) - e[-1]).round(4).tolist() for name, e in energies.items()}


def pushes(atoms, a: int, b: int, calculators: dict) -> dict:
    """Per calculator, ``pair_push`` of hydrogens a and b (eV/A, 4 decimals)."""
    result = {}
    for name, calculator in calculators.items():
        probe = atoms.copy()
        probe.calc = calculator
        result[name] = round(pair_push(atoms, probe.get_forces(), a, b), 4)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out")
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="the models compared (default v1 v2)")
    add_model_option(parser)
    args = parser.parse_args(argv)
    register_models(parser, args, *args.models)
    starting = {seed: round(contacts(random_water_box(64, 1.0, seed=seed))["hh_inter_min"], 3) for seed in range(12)}
    print(f"shortest intermolecular H...H of random_water_box(64, 1.0, seed), by seed (A): {starting}")
    atoms = equilibrated(64, 1000)
    a, b, distance = closest_intermolecular_hh(atoms)
    print(f"closest intermolecular H...H: atoms {a} and {b}, {distance:.3f} A apart")
    calculators = {name: StudentCalculator(MODELS[name]) for name in args.models}
    calculators["gfn2-xtb"] = make_teacher("gfn2-xtb")
    push = pushes(atoms, a, b, calculators)
    print(f"force pushing the pair apart (eV/A; negative pulls it together): {push}", flush=True)
    energies = scan(atoms, a, b, calculators)
    print("d (A)  " + "  ".join(f"{name:>9}" for name in energies) + "   (eV, relative to d = 2.0 A)")
    for k, distance_k in enumerate(DISTANCES):
        print(f"{distance_k:5.2f}  " + "  ".join(f"{energies[name][k]:9.3f}" for name in energies))
    if args.out:
        from mlff_distiller.files import atomic_write_text

        report = {
            "starting_boxes_hh_min": starting,
            "pair": [a, b],
            "distance": distance,
            "push_apart_ev_per_a": push,
            "scan_distances": DISTANCES.tolist(),
            "energies_ev": energies,
        }
        atomic_write_text(args.out, json.dumps(report, indent=1))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
