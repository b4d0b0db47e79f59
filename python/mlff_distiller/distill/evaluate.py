"""How close a student is to its teacher: errors of energies and forces, tables, parity plots.

`mlff-distiller evaluate MODEL DATA` prints energy MAE per atom, force MAE/RMSE and the largest
error of one atom's force, overall, per element (forces on atoms of that element) and optionally
per group of structures (``--group-by molecule``, or ``--group-by molecule distortion`` for every
combination); ``--json`` writes the same numbers, ``--plot`` a parity plot.
Forces come from the same analytic path that LAMMPS runs.

With ``--committee M1 M2 ...`` it also reports how much those models disagree on each structure
(the largest, over atoms, of the spread of their force vectors) and whether that disagreement
ranks MODEL's errors: Spearman correlations with MODEL's largest and RMS force error per
structure, and how many of the 10% worst structures are among the 10% most disputed;
``--per-structure CSV`` writes every structure's error and disagreement.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from ..files import atomic_path, atomic_write_text
from ..model.calculator import committee_force_spread
from ..model.io import load_model
from ..model.interface import StudentModel
from ..model.painn import DTYPES
from .dataset import GraphDataset, read_structures
from .metrics import Predictions, collect_predictions, error_metrics, predicted_energies_and_forces


def format_table(metrics: dict) -> str:
    """The metrics as a plain-text table: one row overall, then per element, then per group."""
    header = f"{'':32s} {'count':>8s} {'E MAE':>10s} {'F MAE':>10s} {'F RMSE':>10s} {'F max':>10s}"
    units = f"{'':32s} {'':>8s} {'meV/atom':>10s} {'meV/A':>10s} {'meV/A':>10s} {'meV/A':>10s}"

    def row(name, count, m):
        energy = f"{m['energy_mae_meV_per_atom']:10.2f}" if "energy_mae_meV_per_atom" in m else f"{'-':>10s}"
        return (
            f"{name[:32]:32s} {count:8d} {energy} {m['force_mae_meV_per_A']:10.1f} "
            f"{m['force_rmse_meV_per_A']:10.1f} {m['force_max_error_meV_per_A']:10.0f}"
        )

    lines = [header, units, row("all structures", metrics["n_structures"], metrics)]
    lines += [row(f"  forces on {el}", m["n_atoms"], m) for el, m in metrics["per_element"].items()]
    lines += [row(f"  {group}", m["n_structures"], m) for group, m in metrics.get("per_group", {}).items()]
    if "committee" in metrics:
        c = metrics["committee"]
        lines.append(
            f"committee of {c['n_members']}: disagreement (largest force spread of a structure) "
            f"median {c['disagreement_median_meV_per_A']:.0f} meV/A; Spearman with the largest force "
            f"error {c['spearman_max_error']:.2f}, with the force RMSE {c['spearman_rmse']:.2f}; "
            f"{c['worst_decile_found']:.0%} of the 10% worst structures are among the 10% most disputed"
        )
        lines += [
            f"  {group[:30]:30s} Spearman with the largest force error {m['spearman_max_error']:.2f}, "
            f"with the force RMSE {m['spearman_rmse']:.2f}"
            for group, m in c.get("per_group", {}).items()
        ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Committee disagreement
# ----------------------------------------------------------------------------------------------
def atom_ranges(n_atoms: np.ndarray) -> np.ndarray:
    """[S] index of the first atom of each structure in the concatenated atom arrays."""
    return np.cumsum(np.r_[0, n_atoms[:-1]])


def committee_disagreement(member_forces: np.ndarray, n_atoms: np.ndarray) -> np.ndarray:
    """[S] largest, over a structure's atoms, spread of the members' force vectors (eV/A,
    ``committee_force_spread``), from member_forces [K,N,3]."""
    return np.maximum.reduceat(committee_force_spread(member_forces), atom_ranges(n_atoms))


def structure_force_errors(p: Predictions) -> tuple[np.ndarray, np.ndarray]:
    """[S] largest error of one atom's force (norm) and [S] force RMSE, per structure (eV/A)."""
    diff = p.forces - p.forces_ref
    starts = atom_ranges(p.n_atoms)
    largest = np.maximum.reduceat(np.linalg.norm(diff, axis=1), starts)
    rmse = np.sqrt(np.add.reduceat((diff**2).sum(1), starts) / (3 * p.n_atoms))
    return largest, rmse


def ranking_metrics(disagreement: np.ndarray, largest: np.ndarray, rmse: np.ndarray) -> dict:
    """How well disagreement ranks errors: Spearman correlations, and the fraction of the 10%
    structures of largest error that are also among the 10% of largest disagreement."""
    from scipy.stats import spearmanr

    decile = max(1, len(largest) // 10)
    worst = set(np.argsort(largest)[-decile:])
    disputed = set(np.argsort(disagreement)[-decile:])
    return {
        "spearman_max_error": float(spearmanr(disagreement, largest).statistic),
        "spearman_rmse": float(spearmanr(disagreement, rmse).statistic),
        "worst_decile_found": len(worst & disputed) / decile,
        "disagreement_median_meV_per_A": 1e3 * float(np.median(disagreement)),
    }


MIN_RANKED_STRUCTURES = 10  # a group's own ranking metrics need at least this many structures


def committee_report(
    members: Sequence[StudentModel], dataset: GraphDataset, p: Predictions, batch_size: int = 32
) -> tuple[dict, list[dict]]:
    """Committee metrics (see ``ranking_metrics``) and one row per structure (group, atoms,
    largest force error, force RMSE, disagreement, in meV/A) for ``p``'s model."""
    member_forces = np.stack([predicted_energies_and_forces(m, dataset, batch_size)[1] for m in members])
    disagreement = committee_disagreement(member_forces, p.n_atoms)
    largest, rmse = structure_force_errors(p)
    rows = [
        {
            "structure": k,
            "group": str(p.groups[k]),
            "n_atoms": int(p.n_atoms[k]),
            "force_max_error_meV_per_A": 1e3 * float(largest[k]),
            "force_rmse_meV_per_A": 1e3 * float(rmse[k]),
            "disagreement_meV_per_A": 1e3 * float(disagreement[k]),
        }
        for k in range(len(largest))
    ]
    metrics = {"n_members": len(members), **ranking_metrics(disagreement, largest, rmse)}
    groups = dict.fromkeys(p.groups)
    if len(groups) > 1:
        # within a group (one distortion, say) the ranking cannot lean on what differs between groups
        metrics["per_group"] = {
            str(g): ranking_metrics(disagreement[p.groups == g], largest[p.groups == g], rmse[p.groups == g])
            for g in groups
            if (p.groups == g).sum() >= MIN_RANKED_STRUCTURES
        }
    return metrics, rows


def write_rows(rows: list[dict], path: str | Path) -> None:
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# ----------------------------------------------------------------------------------------------
# Parity plot
# ----------------------------------------------------------------------------------------------
def parity_plot(p: Predictions, path: str | Path, title: str = "") -> Path:
    """PNG with two panels: energy per atom and force components, student against teacher.

    Energies are shown relative to the model's atomic reference energies (its per-element
    shifts): what is left is the interaction energy the network learned, whose spread is the
    meaningful scale; raw totals would mostly show differences in composition.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    m = error_metrics(p)
    fig, (ax_e, ax_f) = plt.subplots(1, 2, figsize=(9, 4.2), dpi=90)
    e_ref = (p.energy_ref - p.reference_energy) / p.n_atoms
    e_pred = (p.energy - p.reference_energy) / p.n_atoms
    ax_e.scatter(e_ref, e_pred, s=4, alpha=0.5, rasterized=True)
    _diagonal(ax_e, e_ref, e_pred)
    ax_e.set(
        xlabel="teacher energy per atom (eV)",
        ylabel="student energy per atom (eV)",
        title=f"energy, MAE {m['energy_mae_meV_per_atom']:.2f} meV/atom",
    )
    for el in dict.fromkeys(p.symbols):
        ax_f.scatter(
            p.forces_ref[p.symbols == el].ravel(),
            p.forces[p.symbols == el].ravel(),
            s=1,
            alpha=0.3,
            label=el,
            rasterized=True,
        )
    _diagonal(ax_f, p.forces_ref.ravel(), p.forces.ravel())
    ax_f.set(
        xlabel="teacher force component (eV/A)",
        ylabel="student force component (eV/A)",
        title=f"forces, MAE {m['force_mae_meV_per_A']:.1f} meV/A",
    )
    ax_f.legend(markerscale=6, fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as temporary:
        fig.savefig(temporary)
    plt.close(fig)
    return Path(path)


def _diagonal(ax, x: np.ndarray, y: np.ndarray) -> None:
    lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
    ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------
def evaluate_file(
    model: str | Path | StudentModel,
    data: str | Path,
    batch_size: int = 32,
    dtype: str = "float64",
    group_key: str | Sequence[str] | None = None,
    plot: str | Path | None = None,
    committee: Sequence[str | Path | StudentModel] = (),
    per_structure: str | Path | None = None,
) -> dict:
    """Metrics of a model (file, shipped name or object) on a labelled extended-XYZ file; with a
    committee (two or more models, which must share the model's elements and cutoff), also
    its disagreement and how it ranks the model's errors (``committee_report``)."""
    model, *members = [m if isinstance(m, StudentModel) else load_model(m, DTYPES[dtype]) for m in (model, *committee)]
    if len(members) == 1:
        raise ValueError("a committee needs at least two models to disagree: give two or more after --committee")
    for member in members:
        if member.elements != model.elements or member.cutoff != model.cutoff:
            raise ValueError(
                f"committee member with elements {member.elements} and cutoff {member.cutoff} A does "
                f"not match the evaluated model ({model.elements}, {model.cutoff} A): a committee "
                "must read the same graphs; train its members with the same --elements and --cutoff"
            )
    structures = read_structures(data)
    dataset = GraphDataset(structures, model.elements, model.cutoff, model.dtype)
    predictions = collect_predictions(model, dataset, batch_size, group_key)
    if plot:
        parity_plot(predictions, plot, title=Path(data).name)
    metrics = error_metrics(predictions)
    if members:
        metrics["committee"], rows = committee_report(members, dataset, predictions, batch_size)
        if per_structure:
            write_rows(rows, per_structure)
    elif per_structure:
        raise ValueError("--per-structure writes each structure's committee disagreement: add --committee")
    return metrics


def run(args) -> int:
    metrics = evaluate_file(
        args.model, args.data, args.batch_size, args.dtype, args.group_by, args.plot, args.committee, args.per_structure
    )
    metrics = {"model": str(args.model), "data": str(args.data), **metrics}
    if args.json == "-":
        json.dump(metrics, sys.stdout, indent=2)
        print()
        return 0
    print(format_table(metrics))
    if args.json:
        atomic_write_text(args.json, json.dumps(metrics, indent=2) + "\n")
        print(f"metrics written to {args.json}")
    if args.plot:
        print(f"parity plot written to {args.plot}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="errors of a model against a labelled data set", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("model", help="model file, or the name of a shipped model (e.g. default)")
    parser.add_argument("data", help="extended-XYZ file with teacher energies and forces")
    parser.add_argument("--plot", metavar="PNG", help="write a parity plot of energies and forces")
    parser.add_argument("--json", metavar="PATH", help="write the metrics as JSON ('-': to stdout, no table)")
    parser.add_argument(
        "--group-by",
        metavar="KEY",
        nargs="+",
        help="also report per value of this info key (e.g. molecule), or per combination of "
        "the values of several keys (e.g. molecule distortion)",
    )
    parser.add_argument(
        "--committee",
        metavar="MODEL",
        nargs="+",
        default=[],
        help="models whose disagreement per structure is reported and ranked against the errors",
    )
    parser.add_argument(
        "--per-structure", metavar="CSV", help="with --committee: write each structure's force errors and disagreement"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="structures per model call (default 32)")
    parser.add_argument(
        "--dtype", choices=sorted(DTYPES), default="float64", help="precision to run the model in (default float64)"
    )
    parser.set_defaults(func=run)
