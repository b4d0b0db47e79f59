"""From a couple of SMILES to a model file, end to end, in a few minutes on a laptop CPU.

1. sample off-equilibrium geometries of each molecule (RDKit conformers + MMFF94 Langevin MD);
2. label them with the teacher (GFN2-xTB by default) into ``train.extxyz``, and a few more,
   from independent MD runs, into ``test.extxyz``;
3. train a small student on the training file (forces through the analytic backward);
4. evaluate it on the test file: a table, ``metrics.json`` and ``parity.png``.

    .venv/bin/python examples/distill_from_smiles.py                      # ethanol, acetic acid
    .venv/bin/python examples/distill_from_smiles.py --smiles CCO c1ccccc1 --epochs 100

Labelling is resumable: running the script again reuses the labels already in the output folder.
The default run is short and its model rough; more snapshots and epochs make it better.
"""

import argparse
import json
from pathlib import Path

import torch

from mlff_distiller.distill.evaluate import evaluate_file, format_table
from mlff_distiller.distill.label import label_structures
from mlff_distiller.distill.sampling import sample_molecule
from mlff_distiller.distill.train import TrainConfig, train_from_file
from mlff_distiller.files import atomic_write_text
from mlff_distiller.model.painn import PaiNNConfig


def sample(smiles_list, temperatures, snapshots, seed):
    """MMFF94 MD snapshots of every molecule: one conformer, one run per temperature."""
    return [
        atoms
        for smiles in smiles_list
        for atoms in sample_molecule(
            smiles, n_conformers=1, temperatures=temperatures, snapshots_per_run=snapshots, seed=seed
        )
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smiles", nargs="+", default=["CCO", "CC(=O)O"])
    parser.add_argument("--teacher", default="gfn2-xtb")
    parser.add_argument("--snapshots", type=int, default=25, help="per molecule and temperature (default 25)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--out-dir", type=Path, default=Path("runs/distill_from_smiles"))
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    out = args.out_dir

    # Training geometries at two temperatures; test geometries from other MD runs (another seed).
    label_structures(sample(args.smiles, (300.0, 700.0), args.snapshots, seed=0), args.teacher, out / "train.extxyz")
    label_structures(
        sample(args.smiles, (500.0,), max(2, args.snapshots // 3), seed=1), args.teacher, out / "test.extxyz"
    )

    model_config = PaiNNConfig(elements=[], n_features=args.features, n_layers=3, n_radial=16, cutoff=5.0)
    config = TrainConfig(
        epochs=args.epochs, batch_size=4, learning_rate=3e-3, warmup_epochs=2, energy_weight=10.0, force_weight=1.0
    )
    train_from_file(
        out / "train.extxyz", out / "model.pt", model_config, config, validation_fraction=0.15, group_key="molecule"
    )

    metrics = evaluate_file(out / "model.pt", out / "test.extxyz", group_key="molecule", plot=out / "parity.png")
    print(format_table(metrics))
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    print(f"\nmodel file: {(out / 'model.pt').resolve()}")
    print(f"use it in ASE: StudentCalculator({str(out / 'model.pt')!r})")


if __name__ == "__main__":
    main()
