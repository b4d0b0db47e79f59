"""Train a committee of small students on the default model's data, for an uncertainty signal.

    OMP_NUM_THREADS=1 python examples/committee/train_committee.py   # ~20 min on one core

Run it again after an interruption: finished members are kept and the interrupted one continues
from its checkpoint in ``runs/committee/``.

Each member is a 32-feature, 3-layer PaiNN with the ZBL repulsion, trained on the v1 training
data (``examples/default_model/data/train.extxyz``) with its own seed: its own initial weights,
its own 5% validation split and its own batch order, which is what makes members disagree where
the data do not pin the answer down. Writes ``member<k>.pt`` (about 200 kB each) into
``python/mlff_distiller/shipped_models/committees/default/``, the committee that ships with the
default model and that ``mlff-distiller md`` watches its runs with, and prints each member's
validation errors. Their disagreement is evaluated with
``mlff-distiller evaluate MODEL DATA --committee M1 M2 M3``.
"""

import argparse
from pathlib import Path

import torch

from mlff_distiller.distill.train import TrainConfig, train_from_file
from mlff_distiller.model.io import SHIPPED_DIR
from mlff_distiller.model.painn import PaiNNConfig

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "default_model" / "data" / "train.extxyz"
OUTPUT = SHIPPED_DIR / "committees" / "default"  # the shipped default's committee: `md` watches with it
CHECKPOINTS = HERE.parent.parent / "runs" / "committee"  # git-ignored
SEEDS = (1, 2, 3)
ELEMENTS = ["H", "C", "N", "O", "F", "S", "Cl"]
MEMBER = PaiNNConfig(elements=ELEMENTS, n_features=32, n_layers=3, n_radial=20, cutoff=5.0, repulsion=True)
# 24 epochs of ~1,600 structures: ~8 minutes a member on one free core
TRAINING = dict(
    epochs=24,
    batch_size=8,
    learning_rate=3e-3,
    min_learning_rate=1e-5,
    schedule="cosine",
    warmup_epochs=1.0,
    energy_weight=10.0,
    force_weight=1.0,
    early_stopping_patience=24,
    dtype="float32",
)


def main():
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    torch.set_num_threads(1)
    for seed in SEEDS:
        output = OUTPUT / f"member{seed}.pt"
        if output.exists():
            print(f"{output.name} exists: skipped (delete it to train that member again)")
            continue
        checkpoint = CHECKPOINTS / f"member{seed}.ckpt"
        config = PaiNNConfig(**MEMBER.to_dict())
        train_from_file(
            DATA,
            output,
            config,
            TrainConfig(seed=seed, **TRAINING),
            validation_fraction=0.05,
            group_key="molecule",
            checkpoint=checkpoint,
            resume=checkpoint.exists(),
        )


if __name__ == "__main__":
    main()
