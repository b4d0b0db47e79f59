"""Make the shipped v2 default model with the active-learning command, starting from the candidate.

    python examples/default_model_v2/active_learn_v2.py --device cuda     # ~10 min on an H100

needs ``runs/default_model_v2/extra.extxyz`` (``make_dataset.py``) and the candidate
``runs/default_model_v2/candidate.pt`` (``train_v2.py``). It

1. writes the data the loop starts from: the training and validation parts of v1's and the extra
   data, split as ``train_v2.py`` splits them (no test structure is ever trained on), and the
   seed geometries of the student MD (one RDKit conformer of every other training molecule);
2. runs ``mlff-distiller active-learn`` in ``runs/default_model_v2/al`` (a rerun resumes it):
   a committee of three fine-tuned from the candidate, student MD at 500, 1,000 and 1,500 K from
   every seed, GFN2-xTB labels for the most disputed snapshots, and a final committee on all of it;
3. compares the final model with v1 on ``train_v2.py``'s test sets and writes it as
   ``python/mlff_distiller/shipped_models/default_v2.pt``, with ``metrics.json`` beside this script
   and the final committee's other members in ``runs/default_model_v2/al/final``.
"""

import argparse
import subprocess
import sys
from pathlib import Path

import ase.io
import torch

from mlff_distiller.distill.sampling import conformer_to_atoms, embed_conformers
from mlff_distiller.files import atomic_path
from mlff_distiller.model.io import SHIPPED_DIR, load_model
from train_v2 import CANDIDATE, HERE, ROOT, data_splits, compare_with_v1, save_with_metrics

from make_dataset import NEW_MOLECULES, SEED, TRAINING_MOLECULES, check_unseen_stays_unseen

WORK = ROOT / "runs" / "default_model_v2"
LOOP = [
    "--rounds", "1",
    "--committee", "3",
    "--temperatures", "500", "1000", "1500",
    "--md-steps", "240",
    "--md-interval", "12",
    "--select", "200",
    "--initial", "0",
    "--epochs", "6",
    "--batch-size", "8",
    "--learning-rate", "2e-4",
]  # fmt: skip


def write_inputs(folder: Path) -> tuple[list[Path], Path]:
    """The loop's starting data (training and validation parts only) and its seed geometries."""
    folder.mkdir(parents=True, exist_ok=True)
    pool, seeds = folder / "pool.extxyz", folder / "seeds.extxyz"
    if not pool.exists():
        training, validation, _ = data_splits()
        with atomic_path(pool) as temporary:
            ase.io.write(temporary, training + validation, format="extxyz")
    if not seeds.exists():
        check_unseen_stays_unseen()
        molecules = list({**TRAINING_MOLECULES, **NEW_MOLECULES}.items())[::2]
        structures = []
        for name, smiles in molecules:
            atoms = conformer_to_atoms(embed_conformers(smiles, 1, SEED), 0)
            atoms.info.update(molecule=name, smiles=smiles)
            structures.append(atoms)
        with atomic_path(seeds) as temporary:
            ase.io.write(temporary, structures, format="extxyz")
    return [pool], seeds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--inputs-only", action="store_true", help="write the loop's inputs and stop")
    args = parser.parse_args()
    data, seeds = write_inputs(WORK / "al_inputs")
    if args.inputs_only:
        return
    command = [
        sys.executable, "-m", "mlff_distiller.cli", "active-learn",
        "--structures", str(seeds),
        "--data", *map(str, data),
        "--init-model", str(CANDIDATE),
        "--workdir", str(WORK / "al"),
        "--device", args.device,
        *LOOP,
    ]  # fmt: skip
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True)
    model = load_model(WORK / "al" / "final" / "member0.pt").to(torch.float32)
    metadata = {**model.metadata, "active_learning": "mlff-distiller active-learn " + " ".join(LOOP)}
    _, _, tests = data_splits()
    save_with_metrics(
        model, metadata, compare_with_v1(model, tests), SHIPPED_DIR / "default_v2.pt", HERE / "metrics.json"
    )


if __name__ == "__main__":
    main()
