"""How a committee's disagreement predicts large force errors, for the default warning threshold of
``mlff-distiller md`` (issue 24): per threshold, how many structures of the unseen-molecule benchmark
lie above it and what share of those has a largest force error of v1 above 1 eV/A (and below it).

    python benchmarks/analysis/committee_threshold.py [CSV]

Reads ``evaluate_benchmark.py``'s per-structure table (default: v1 with the shipped committee,
``examples/unseen_benchmark/results/default_per_structure.csv``).
"""

import argparse
import csv
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "examples" / "unseen_benchmark" / "results" / "default_per_structure.csv"
THRESHOLDS = (0.3, 0.5, 0.75, 1.0, 1.5, 2.0)  # eV/A
LARGE_ERROR = 1.0  # eV/A


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", nargs="?", type=Path, default=TABLE)
    args = parser.parse_args()
    rows = list(csv.DictReader(args.table.open()))
    group = np.array([r["group"] for r in rows])
    spread = np.array([float(r["disagreement_meV_per_A"]) for r in rows]) / 1000
    error = np.array([float(r["force_max_error_meV_per_A"]) for r in rows]) / 1000
    print(f"{args.table.relative_to(ROOT)}: {len(rows)} structures")
    for name in dict.fromkeys(group):
        q = np.quantile(spread[group == name], [0.1, 0.5, 0.9, 1.0])
        print(f"  {name:6s} disagreement (eV/A) 10%/50%/90%/max {q[0]:.2f} {q[1]:.2f} {q[2]:.2f} {q[3]:.2f}")
    print(f"threshold (eV/A)  above  share above with an error > {LARGE_ERROR} eV/A  share below with one")
    for t in THRESHOLDS:
        above = spread > t
        print(
            f"{t:16.2f} {above.sum():6d} {np.mean(error[above] > LARGE_ERROR):39.2f} {np.mean(error[~above] > LARGE_ERROR):19.2f}"
        )


if __name__ == "__main__":
    main()
