"""One O-H of a water stretched and squeezed: energy and curvature of each model against GFN2-xTB
(issue 24: whether a model's bond is as smooth as the teacher's where the repulsion ends).

    python benchmarks/analysis/oh_stretch_scan.py [--models v1 v2] [--model NAME=FILE] [--out FILE.json]

The other atoms stay at ASE's water geometry; the hydrogen moves along the bond from 0.80 to 1.15 A
in steps of 0.005 A. The curvature d2E/dd2 comes from central differences of the energies (float64
models). Prints the curvature at a few distances and, per model, the largest deviation from the
teacher's curvature between 0.88 and 1.10 A (the bond's range in 300 K liquid water is about
0.90-1.07 A), and writes the scan as JSON with a plot beside it (``.png``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from ase.build import molecule

from mlff_distiller.distill.teacher import make_teacher
from mlff_distiller.model.calculator import StudentCalculator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import MODELS, add_model_option, register_models  # noqa: E402

DISTANCES = np.round(np.arange(0.80, 1.1501, 0.005), 3)
REPORTED = (0.90, 0.93, 0.95, 0.97, 1.00, 1.05)
LIQUID_RANGE = (0.88, 1.10)


def scan(calculator) -> np.ndarray:
    """[D] energy (eV) with the first hydrogen at each of DISTANCES from the oxygen."""
    water = molecule("H2O")
    o, h = water.positions[0], water.positions[1]
    unit = (h - o) / np.linalg.norm(h - o)
    energies = []
    for d in DISTANCES:
        atoms = water.copy()
        atoms.positions[1] = o + d * unit
        atoms.calc = calculator
        energies.append(atoms.get_potential_energy())
    return np.array(energies)


def curvature(energies: np.ndarray) -> np.ndarray:
    """[D-2] central second differences, at DISTANCES[1:-1] (eV/A^2)."""
    step = DISTANCES[1] - DISTANCES[0]
    return (energies[2:] - 2 * energies[1:-1] + energies[:-2]) / step**2


def plot(curvatures: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    for name, c in curvatures.items():
        ax.plot(DISTANCES[1:-1], c, label=name, lw=2 if name == "GFN2-xTB" else 1.2)
    ax.axvspan(*LIQUID_RANGE, color="0.92", zorder=0)
    ax.set_xlabel("O-H distance (A)")
    ax.set_ylabel("d2E/dd2 (eV/A^2)")
    ax.set_title("one water's O-H bond (grey: its range in 300 K liquid)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--out", type=Path, default=Path("oh_stretch_scan.json"))
    add_model_option(parser)
    args = parser.parse_args()
    register_models(parser, args, *args.models)
    energies = {"GFN2-xTB": scan(make_teacher("gfn2-xtb"))}
    energies.update({name: scan(StudentCalculator(MODELS[name])) for name in args.models})
    curvatures = {name: curvature(e) for name, e in energies.items()}
    inside = (DISTANCES[1:-1] >= LIQUID_RANGE[0]) & (DISTANCES[1:-1] <= LIQUID_RANGE[1])
    at = [int(np.argmin(abs(DISTANCES[1:-1] - d))) for d in REPORTED]
    print(
        "curvature (eV/A^2) at "
        + " ".join(f"{d:.2f}" for d in REPORTED)
        + " A; largest |model - teacher| in 0.88-1.10 A"
    )
    record = {"distances_A": DISTANCES.tolist(), "models": {}}
    for name, c in curvatures.items():
        deviation = float(abs(c - curvatures["GFN2-xTB"])[inside].max())
        print(f"{name:9s} " + " ".join(f"{c[k]:6.1f}" for k in at) + f"   {deviation:6.1f}")
        record["models"][name] = {
            "file": MODELS.get(name, "gfn2-xtb"),
            "energies_eV": energies[name].tolist(),
            "largest_curvature_deviation_eV_A2": deviation,
        }
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    plot(curvatures, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
