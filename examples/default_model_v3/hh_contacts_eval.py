"""The models on the held-out part of ``make_contacts.py``'s data (the test split ``train_v2.py
--extra-data`` makes of it): force errors against GFN2-xTB, and how hard each pushes the two close
hydrogens apart (``structures.pair_push``) next to the teacher.

    python examples/default_model_v3/hh_contacts_eval.py [--model NAME=FILE ...] [--out FILE.json]
"""

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
import torch

from mlff_distiller.distill.dataset import read_structures, split_structures
from mlff_distiller.distill.metrics import force_errors
from mlff_distiller.files import atomic_write_text
from mlff_distiller.model.calculator import StudentCalculator
from mlff_distiller.model.io import load_model
from mlff_distiller.structures import pair_push

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DATA = ROOT / "runs" / "default_model_v3" / "hh_contacts.extxyz"
MODELS = {"v1": "default", "v2": "default_v2", "v3": "default_v3"}


def held_out() -> list:
    """The test split of the contact data, as train_v2.py makes it, closest pairs first."""
    spec = importlib.util.spec_from_file_location("train_v2", HERE.parent / "default_model_v2" / "train_v2.py")
    train_v2 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_v2)
    fractions = [train_v2.TEST_FRACTION, train_v2.VALIDATION_FRACTION]
    test = split_structures(read_structures(DATA), fractions, train_v2.SEED, group_key="molecule")[0]
    return sorted(test, key=lambda atoms: atoms.info["hh_distance"])


def evaluate(model_file: str, structures: list) -> dict:
    """The force errors (``metrics.force_errors``) over all the structures, and per structure the
    push on its close pair under the model and under the teacher."""
    calculator = StudentCalculator(load_model(model_file, torch.float64))
    forces, pushes = [], []
    for labelled in structures:
        atoms = labelled.copy()
        atoms.calc = calculator
        forces.append(atoms.get_forces())
        a, b = labelled.info["hh_pair"]
        pushes.append(
            {
                "distance": float(labelled.info["hh_distance"]),
                "model": round(pair_push(labelled, forces[-1], a, b), 3),
                "teacher": round(pair_push(labelled, labelled.get_forces(), a, b), 3),
            }
        )
    teacher = np.concatenate([labelled.get_forces() for labelled in structures])
    return {**force_errors(np.concatenate(forces), teacher), "pushes": pushes}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[], metavar="NAME=FILE", help="another model")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    models = {**MODELS, **dict(item.split("=", 1) for item in args.model)}
    structures = held_out()
    print(f"{len(structures)} held-out structures (H...H at 0.9-1.5 A)")
    report = {}
    for name, model_file in models.items():
        report[name] = evaluate(model_file, structures)
        pushes = " ".join(f"{p['distance']:.2f}:{p['model']:+.2f}/{p['teacher']:+.2f}" for p in report[name]["pushes"])
        errors = report[name]
        print(
            f"{name}: force MAE {errors['force_mae_meV_per_A']:.1f} meV/A, largest error of an atom's force "
            f"{errors['force_max_error_meV_per_A'] / 1000:.2f} eV/A"
        )
        print(f"  push apart, eV/A (distance: model/teacher): {pushes}", flush=True)
    if args.out:
        atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
