"""Energy conservation of the 192-water NVE runs of session 5 (v2 and v1 on an H100, float64 export,
plugin, compiled): drift fitted per window, and the plot nve_drift.png.

    python benchmarks/results/session5_2026-11-26/nve_summary.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

HERE = Path(__file__).resolve().parent
ATOMS = 192
RUNS = {  # label: energy files in time order (one trajectory, continued from restart files)
    "v2, 0.5 fs (calls B and C)": ["water192_nve_gpu/energy.txt", "water192_nve_gpu_callC/energy_main.txt"],
    "v2, 0.25 fs from 75 ps": ["water192_nve_gpu_callC/energy_v2_quarter_fs.txt"],
    "v1, 0.5 fs from 75 ps": ["water192_nve_gpu_callC/energy_v1_half_fs.txt"],
}


def load(files):
    """Time (ps) and total energy per atom; a piece continued from a restart file replaces what the
    earlier piece ran past that restart (call B ran on after writing the restart call C started from)."""
    tables = [np.loadtxt(HERE / f, ndmin=2) for f in files]
    kept = [t[t[:, 1] < after[0, 1]] for t, after in zip(tables, tables[1:])] + tables[-1:]
    table = np.concatenate(kept)
    return table[:, 1], table[:, 4] / ATOMS


def main():
    fig, ax = plt.subplots(figsize=(7, 4))
    reference = None  # the first run's start: the branches start from its state at 75 ps
    for label, files in RUNS.items():
        time, energy = load(files)
        window = (time >= 75.0) & (time <= 95.0)
        slope = np.polyfit(time[window], energy[window], 1)[0]
        whole = np.polyfit(time, energy, 1)[0]
        print(
            f"{label:28s} {time[0]:6.1f}-{time[-1]:6.1f} ps: drift {1e6 * whole:+7.1f} ueV/atom/ps over the run, "
            f"{1e6 * slope:+7.1f} in 75-95 ps; E(end) - E(start) {1e3 * (energy[-1] - energy[0]):+.2f} meV/atom"
        )
        reference = energy[0] if reference is None else reference
        ax.plot(time, 1e3 * (energy - reference), lw=1, label=label)
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("E_total - E_total(1 ps) (meV/atom)")
    ax.set_title("192 waters, NVE through mliap/halo on an H100 (float64)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(HERE / "nve_drift.png", dpi=100)


if __name__ == "__main__":
    main()
