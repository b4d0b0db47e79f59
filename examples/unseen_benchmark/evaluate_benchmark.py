"""Evaluate models on the unseen-molecule benchmark, per molecule and distortion, and check
whether the committee's disagreement ranks their errors.

    OMP_NUM_THREADS=1 python examples/unseen_benchmark/evaluate_benchmark.py [MODEL ...]

For each model (default: the shipped ``default`` and committee member 1) writes into
``results/`` next to this script: ``<name>.txt`` (the tables of ``mlff-distiller evaluate``
grouped by distortion, then by molecule and distortion), ``<name>.json`` (the same metrics and
the committee's ranking metrics), ``<name>_per_structure.csv`` (each structure's largest force
error, force RMSE and committee disagreement) and ``<name>_disagreement.png`` (largest force
error against disagreement, one colour per distortion). The committee is
the one shipped with the default model, ``shipped_committee("default")``.
"""

import argparse
import csv
import json
from pathlib import Path

from mlff_distiller.distill.evaluate import evaluate_file, format_table
from mlff_distiller.files import atomic_path, atomic_write_text
from mlff_distiller.model.io import shipped_committee

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "unseen.extxyz"
COMMITTEE = shipped_committee("default")
DEFAULT_MODELS = ["default", str(COMMITTEE[0])]


def plot_disagreement(rows_path: Path, png: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(rows_path) as fh:
        rows = list(csv.DictReader(fh))
    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=90)
    for group in dict.fromkeys(r["group"] for r in rows):
        chosen = [r for r in rows if r["group"] == group]
        ax.scatter(
            [float(r["disagreement_meV_per_A"]) / 1e3 for r in chosen],
            [float(r["force_max_error_meV_per_A"]) / 1e3 for r in chosen],
            s=12,
            label=group,
        )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="committee disagreement (eV/A)",
        ylabel="largest force error of the structure (eV/A)",
        title=title,
    )
    ax.legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(png) as temporary:
        fig.savefig(temporary)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", default=DEFAULT_MODELS)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    for model in parser.parse_args().models:
        name = Path(model).stem
        rows = out / f"{name}_per_structure.csv"
        by_distortion = evaluate_file(model, DATA, group_key="distortion", committee=COMMITTEE, per_structure=rows)
        by_molecule = evaluate_file(model, DATA, group_key=["molecule", "distortion"])
        text = f"{model} on {DATA.name}\n\n{format_table(by_distortion)}\n\n{format_table(by_molecule)}\n"
        print(text)
        atomic_write_text(out / f"{name}.txt", text)
        atomic_write_text(
            out / f"{name}.json",
            json.dumps(
                {
                    "model": model,
                    "data": DATA.name,
                    "by_distortion": by_distortion,
                    "by_molecule_and_distortion": by_molecule,
                },
                indent=2,
            )
            + "\n",
        )
        c = by_distortion["committee"]
        plot_disagreement(rows, out / f"{name}_disagreement.png", f"{name}: Spearman {c['spearman_max_error']:.2f}")


if __name__ == "__main__":
    main()
