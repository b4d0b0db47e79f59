"""Train the shipped default model on the GFN2-xTB data of ``make_dataset.py``, exactly.

    .venv/bin/python examples/default_model/train_default.py            # ~40 min on one core
    .venv/bin/python examples/default_model/train_default.py --resume   # after an interruption
(a fresh run refuses to overwrite runs/default_model/checkpoint.pt: delete it to start again)

Every molecule (and the water boxes) gives 10% of its configurations to a test set and 5% to
a validation set (early stopping keeps the best validation epoch); the model trains on the other
85%. It is then evaluated, in float64 as it runs in LAMMPS, on the test set, the validation set
and ``data/heldout_molecule.extxyz`` (a molecule never trained on), and writes

* ``python/mlff_distiller/shipped_models/default.pt``: the model, with these metrics in its metadata;
* ``metrics.json`` (next to this script): the metrics and whether they meet the targets;
* ``parity.png``: student against teacher on the test set.

Seeded throughout: a rerun on the same data gives the same model (up to floating-point
reductions that torch may order differently on another machine). One torch thread: on a shared
2-core machine a second thread makes training several times slower, not faster.
"""

import argparse
import copy
import json
from pathlib import Path

import torch

from mlff_distiller.distill.dataset import GraphDataset, read_structures, split_structures
from mlff_distiller.distill.evaluate import format_table, parity_plot
from mlff_distiller.distill.metrics import collect_predictions, error_metrics
from mlff_distiller.distill.train import TrainConfig, build_model, train, training_metadata
from mlff_distiller.files import atomic_write_text
from mlff_distiller.model.io import SHIPPED_DIR, save_model
from mlff_distiller.model.painn import PaiNNConfig

HERE = Path(__file__).resolve().parent
TRAIN_DATA = HERE / "data" / "train.extxyz"
HELDOUT_DATA = HERE / "data" / "heldout_molecule.extxyz"
MODEL_FILE = SHIPPED_DIR / "default.pt"
CHECKPOINT = HERE.parent.parent / "runs" / "default_model" / "checkpoint.pt"  # git-ignored

SEED = 0
TEST_FRACTION, VALIDATION_FRACTION = 0.10, 0.05  # of every molecule's configurations
ELEMENTS = ["H", "C", "N", "O", "F", "S", "Cl"]
# 64 features: ~0.6 MB in float32, and an epoch over ~1500 structures (128 of them 81-atom water
# boxes, which cost ~2/3 of it) takes ~27 s on one free core, so 90 epochs take ~40 minutes.
MODEL = PaiNNConfig(elements=ELEMENTS, n_features=64, n_layers=3, n_radial=20, cutoff=5.0)
TRAINING = TrainConfig(
    epochs=90,
    batch_size=8,
    learning_rate=3e-3,
    min_learning_rate=1e-5,
    schedule="cosine",
    warmup_epochs=1.0,
    energy_weight=10.0,  # with 1.0 the energy error per atom stayed ~3x larger at equal force error
    force_weight=1.0,
    early_stopping_patience=90,
    seed=SEED,
    dtype="float32",
)
# What the default model promises (meV/atom, meV/A), against GFN2-xTB.
TARGETS = {
    "test": {"energy_mae_meV_per_atom": 5.0, "force_mae_meV_per_A": 50.0},
    "heldout_molecule": {"force_mae_meV_per_A": 100.0},
}


def evaluate(model, structures, name):
    """Metrics of ``model`` on ``structures`` (grouped by molecule), printed as a table."""
    dataset = GraphDataset(structures, model.elements, model.cutoff, model.dtype)
    predictions = collect_predictions(model, dataset, batch_size=32, group_key="molecule")
    metrics = error_metrics(predictions)
    print(f"\n{name}\n{format_table(metrics)}", flush=True)
    return metrics, predictions


def targets_met(results):
    """{set: {metric: {"value", "target", "met"}}} for every target."""
    return {
        split: {
            key: {"value": round(results[split][key], 2), "target": target, "met": results[split][key] <= target}
            for key, target in targets.items()
        }
        for split, targets in TARGETS.items()
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resume", action="store_true", help=f"continue from {CHECKPOINT}")
    args = parser.parse_args()
    torch.set_num_threads(1)

    structures = read_structures(TRAIN_DATA)
    test, validation, training = split_structures(
        structures, [TEST_FRACTION, VALIDATION_FRACTION], SEED, group_key="molecule"
    )
    print(f"{len(training)} training, {len(validation)} validation, {len(test)} test structures", flush=True)
    dtype = getattr(torch, TRAINING.dtype)
    train_set = GraphDataset(training, ELEMENTS, MODEL.cutoff, dtype)
    validation_set = GraphDataset(validation, ELEMENTS, MODEL.cutoff, dtype)
    model = build_model(MODEL, training, SEED, dtype)
    state = train(model, train_set, validation_set, TRAINING, checkpoint=CHECKPOINT, resume=args.resume)

    # Evaluate the weights as users run them: in float64, frozen (what load_model gives).
    runtime_model = copy.deepcopy(model).to(torch.float64).eval().requires_grad_(False)
    results, predictions = {}, {}
    for name, data in (("test", test), ("validation", validation), ("heldout_molecule", read_structures(HELDOUT_DATA))):
        results[name], predictions[name] = evaluate(runtime_model, data, name)
    parity_plot(predictions["test"], HERE / "parity.png", title="default model: held-out configurations (test set)")

    metadata = training_metadata(TRAIN_DATA, len(training), len(validation), TRAINING, state)
    metadata["metrics"] = {name: {k: v for k, v in r.items() if k != "per_group"} for name, r in results.items()}
    save_model(model, MODEL_FILE, metadata)
    summary = {
        "model_file": str(MODEL_FILE.relative_to(HERE.parent.parent)),
        "model_file_bytes": MODEL_FILE.stat().st_size,
        "model": MODEL.to_dict(),
        "training": {**metadata["training"], "n_test": len(test)},
        "targets": targets_met(results),
        **results,
    }
    atomic_write_text(HERE / "metrics.json", json.dumps(summary, indent=2) + "\n")
    print("\ntargets:", json.dumps(summary["targets"], indent=2))
    print(f"wrote {MODEL_FILE}, {HERE / 'metrics.json'}, {HERE / 'parity.png'}")


if __name__ == "__main__":
    main()
