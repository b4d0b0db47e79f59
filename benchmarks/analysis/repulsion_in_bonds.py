"""Where the ZBL repulsion acts on bonds (issue 24): the bond lengths of the training data as a
fraction of the two atoms' covalent radii summed, and the repulsion's energy and curvature there,
for a reach (where it ends) of 1.0 (v2's) and 0.75; the teacher's O-H curvature for scale.

    python benchmarks/analysis/repulsion_in_bonds.py [--data FILE ...] [--out FILE.json]

A bond is a pair closer than 1.3 times its covalent sum. The default data are v1's training set and,
where it has been made, v2's extra set (``examples/default_model_v2/make_dataset.py``). The
curvature d2e/dd2 of one pair's repulsion comes from autograd in float64. For scale, GFN2-xTB's
curvature along one O-H of a relaxed water (central differences, 0.005 A). Writes the JSON record
and a plot beside it (``.png``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import ase.io
import numpy as np
import torch
from ase.build import molecule
from ase.data import atomic_numbers, chemical_symbols, covalent_radii
from ase.neighborlist import neighbor_list
from ase.optimize import BFGS

from mlff_distiller.distill.teacher import make_teacher
from mlff_distiller.model.priors import ZBLRepulsion

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = [
    ROOT / "examples" / "default_model" / "data" / "train.extxyz",
    ROOT / "runs" / "default_model_v2" / "extra.extxyz",
]
REACHES = (1.0, 0.75)
BOND = 1.3  # a pair closer than this times its covalent sum counts as a bond
QUANTILES = (0.001, 0.01, 0.5)


def bond_ratios(paths: list[Path]) -> dict[str, np.ndarray]:
    """{"C-H": d / (R_C + R_H) of every bond in the structures, ...}."""
    ratios: dict[str, list] = {}
    for path in paths:
        for atoms in ase.io.iread(path):
            i, j, d = neighbor_list("ijd", atoms, 2.0)
            z = atoms.numbers
            keep = i < j
            i, j, d = i[keep], j[keep], d[keep]
            r = d / (covalent_radii[z[i]] + covalent_radii[z[j]])
            for zi, zj, ratio in zip(z[i][r < BOND], z[j][r < BOND], r[r < BOND]):
                a, b = sorted((int(zi), int(zj)), reverse=True)
                ratios.setdefault(f"{chemical_symbols[a]}-{chemical_symbols[b]}", []).append(ratio)
    return {pair: np.array(v) for pair, v in sorted(ratios.items())}


def repulsion_and_curvature(pair: str, distances: np.ndarray, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """One pair's repulsion energy (eV) and its curvature (eV/A^2) at each distance."""
    elements = pair.split("-")
    zbl = ZBLRepulsion(sorted(set(elements)), reach).double()
    species = torch.tensor([sorted(set(elements)).index(el) for el in elements])
    d = torch.tensor(distances, dtype=torch.float64, requires_grad=True)
    n = len(distances)
    zeros, ones = torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)
    energy = 2 * zbl(d, species, zeros, ones)[0]  # each edge carries half of the pair's energy
    (slope,) = torch.autograd.grad(energy.sum(), d, create_graph=True)
    (curvature,) = torch.autograd.grad(slope.sum(), d)
    return energy.detach().numpy(), curvature.numpy()


def teacher_oh_curvature(step: float = 0.005) -> float:
    """GFN2-xTB's d2E/dd2 along one O-H of a relaxed water (eV/A^2)."""
    water = molecule("H2O")
    water.calc = make_teacher("gfn2-xtb")
    BFGS(water, logfile=None).run(fmax=1e-4)
    o, h = water.positions[0].copy(), water.positions[1].copy()
    unit = (h - o) / np.linalg.norm(h - o)

    def energy(shift):
        atoms = water.copy()
        atoms.calc = water.calc
        atoms.positions[1] = h + shift * unit
        return atoms.get_potential_energy()

    return (energy(step) - 2 * energy(0.0) + energy(-step)) / step**2


def summarise(ratios: dict[str, np.ndarray]) -> dict:
    rows = {}
    for pair, r in ratios.items():
        covalent = sum(covalent_radii[atomic_numbers[el]] for el in pair.split("-"))
        q = np.quantile(r, QUANTILES)
        row = {"bonds": int(r.size), "ratio_min": float(r.min())}
        row.update({f"ratio_q{qq:g}": float(v) for qq, v in zip(QUANTILES, q)})
        for reach in REACHES:
            energy, curvature = repulsion_and_curvature(pair, q * covalent, reach)
            for qq, e, c in zip(QUANTILES, energy, curvature):
                row[f"reach{reach:g}_q{qq:g}"] = {"energy_eV": float(e), "curvature_eV_A2": float(c)}
        rows[pair] = row
    return rows


def plot(ratios: dict[str, np.ndarray], rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [p for p in ("O-H", "C-H", "N-H", "C-C", "O-C", "N-C") if p in ratios]
    fig, axes = plt.subplots(1, len(pairs), figsize=(3.2 * len(pairs), 3.4), squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        covalent = sum(covalent_radii[atomic_numbers[el]] for el in pair.split("-"))
        grid = np.linspace(0.6, 1.15, 221)
        twin = ax.twinx()
        twin.hist(ratios[pair], bins=np.linspace(0.6, 1.15, 56), color="0.85")
        twin.set_yticks([])
        for reach in REACHES:
            _, curvature = repulsion_and_curvature(pair, grid * covalent, reach)
            ax.plot(grid, curvature, label=f"reach {reach:g}")
        ax.set_zorder(twin.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.set_yscale("symlog", linthresh=1.0)
        ax.set_title(f"{pair} ({rows[pair]['bonds']} bonds)")
        ax.set_xlabel("d / (R_cov,i + R_cov,j)")
    axes[0][0].set_ylabel("repulsion curvature (eV/A^2)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("ZBL curvature over the training data's bond lengths (grey)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, nargs="+", default=[p for p in DEFAULT_DATA if p.exists()])
    parser.add_argument("--out", type=Path, default=Path("repulsion_in_bonds.json"))
    args = parser.parse_args()
    ratios = bond_ratios(args.data)
    rows = summarise(ratios)
    teacher = teacher_oh_curvature()
    print(f"data: {', '.join(p.name for p in args.data)}; GFN2-xTB O-H curvature in water: {teacher:.1f} eV/A^2")
    print(f"{'pair':5s} {'bonds':>7s} {'min':>6s} {'1%':>6s} {'median':>6s}   curvature (eV/A^2) at 1% / median")
    for pair, row in rows.items():
        at = "   ".join(
            f"reach {reach:g}: {row[f'reach{reach:g}_q0.01']['curvature_eV_A2']:8.1f} /"
            f" {row[f'reach{reach:g}_q0.5']['curvature_eV_A2']:8.1f}"
            for reach in REACHES
        )
        print(
            f"{pair:5s} {row['bonds']:7d} {row['ratio_min']:6.3f} {row['ratio_q0.01']:6.3f} {row['ratio_q0.5']:6.3f}   {at}"
        )
    record = {"data": [p.name for p in args.data], "teacher_oh_curvature_eV_A2": teacher, "pairs": rows}
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    plot(ratios, rows, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
