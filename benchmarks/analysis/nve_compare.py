"""NVE runs of `mlff-distiller md` side by side: the total energy per atom against time, its fitted
drift and its fluctuation, from each run folder's ``energy.txt`` (issue 24).

    python benchmarks/analysis/nve_compare.py LABEL=RUN_FOLDER [...] --out FILE.json

Writes the JSON (one record per run: label, folder, atoms, ps, drift in ueV/atom/ps from a
straight-line fit, the change from start to end and the standard deviation in ueV/atom) and the
plot beside it (``.png``). The number of atoms comes from the run's ``log.lammps``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np


def atoms_in_run(folder: Path) -> int:
    match = re.search(r"with (\d+) atoms", (folder / "log.lammps").read_text())
    if match is None:
        raise ValueError(f"{folder / 'log.lammps'} names no number of atoms: is the run finished?")
    return int(match[1])


def summary(label: str, folder: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    table = np.loadtxt(folder / "energy.txt", comments="#", ndmin=2)
    n = atoms_in_run(folder)
    time_ps = table[:, 1] - table[0, 1]
    energy_uev = (table[:, 4] - table[0, 4]) / n * 1e6
    record = {
        "label": label,
        "folder": str(folder),
        "atoms": n,
        "ps": round(float(time_ps[-1]), 3),
        "drift_uev_per_atom_per_ps": round(float(np.polyfit(time_ps, energy_uev, 1)[0]), 2),
        "change_uev_per_atom": round(float(energy_uev[-1]), 2),
        "std_uev_per_atom": round(float(energy_uev.std()), 2),
    }
    return record, time_ps, energy_uev


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="LABEL=RUN_FOLDER")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    records = []
    for spec in args.runs:
        label, _, folder = spec.partition("=")
        record, time_ps, energy = summary(label, Path(folder))
        records.append(record)
        print(
            f"{label:28s} {record['ps']:7.2f} ps  drift {record['drift_uev_per_atom_per_ps']:+8.2f} ueV/atom/ps  "
            f"change {record['change_uev_per_atom']:+8.1f}  std {record['std_uev_per_atom']:7.1f} ueV/atom"
        )
        ax.plot(time_ps, energy, lw=0.8, label=f"{label} ({record['drift_uev_per_atom_per_ps']:+.0f} ueV/atom/ps)")
    ax.set_xlabel("NVE time (ps)")
    ax.set_ylabel("E_total - E_total(0) (ueV/atom)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=110)
    args.out.write_text(json.dumps(records, indent=1) + "\n")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
