"""Energy conservation of the 192-water NVE runs of session 5 (v2 and v1 on an H100, float64 export
unless named, plugin, compiled): drift fitted per window, the plot nve_drift.png, and nve_records.json
(one record per run, with the card from the call's machine file and, where LAMMPS timed the run's
NVT part, ms per step). The branches of call C start from the state of the first run at 75 ps and
are drawn from its energy there; call F's runs start anew from the input (1 ps NVT first) and are
drawn from their own start.

    python benchmarks/analysis/nve_summary.py
"""

from pathlib import Path

import json
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

HERE = Path(__file__).resolve().parents[2] / "results" / "session5_2026-11-26"  # the data it reads and writes
ATOMS = 192
RUNS = {  # label: model, timestep (fs), export dtype, the call's machine file, LAMMPS's screen output
    # (None: not kept whole), energy files in time order (one trajectory, continued from restart files)
    "v2, 0.5 fs (calls B and C)": (
        "default_v2", 0.5, "float64", "machine_callB.txt", "water192_nve_gpu/screen.txt",
        ["water192_nve_gpu/energy.txt", "water192_nve_gpu_callC/energy_main.txt"],
    ),
    "v2, 0.25 fs from 75 ps": (
        "default_v2", 0.25, "float64", "machine_callC.txt", None, ["water192_nve_gpu_callC/energy_v2_quarter_fs.txt"],
    ),
    "v1, 0.5 fs from 75 ps": (
        "default", 0.5, "float64", "machine_callC.txt", None, ["water192_nve_gpu_callC/energy_v1_half_fs.txt"],
    ),
    "v1, 0.5 fs (call F)": (
        "default", 0.5, "float64", "water192_nve_gpu_callF/machine.txt",
        "water192_nve_gpu_callF/screen_v1_float64.txt", ["water192_nve_gpu_callF/energy_v1_float64.txt"],
    ),
    "v1, 0.5 fs, float32 (call F)": (
        "default", 0.5, "float32", "water192_nve_gpu_callF/machine.txt",
        "water192_nve_gpu_callF/screen_v1_float32.txt", ["water192_nve_gpu_callF/energy_v1_float32.txt"],
    ),
}  # fmt: skip
LOOP_TIME = re.compile(r"Loop time of ([0-9.]+) on \d+ procs for (\d+) steps")


def card(machine_file: str) -> str:
    """The GPU named on the second line of an nvidia-smi CSV (name, memory, driver)."""
    return (HERE / machine_file).read_text().splitlines()[1].split(",")[0].strip()


def nvt_ms_per_step(screen_file: str | None) -> float | None:
    """ms per step of the run's first timed LAMMPS run (its 1 ps of NVT), when its output was kept."""
    if screen_file is None:
        return None
    seconds, steps = LOOP_TIME.findall((HERE / screen_file).read_text())[0]
    return 1e3 * float(seconds) / int(steps)


def load(files):
    """Time (ps) and total energy per atom; a piece continued from a restart file replaces what the
    earlier piece ran past that restart (call B ran on after writing the restart call C started from)."""
    tables = [np.loadtxt(HERE / f, ndmin=2) for f in files]
    kept = [t[t[:, 1] < after[0, 1]] for t, after in zip(tables, tables[1:])] + tables[-1:]
    table = np.concatenate(kept)
    return table[:, 1], table[:, 4] / ATOMS


def linear_drift(time, energy):
    """Slope of a straight-line fit (eV/atom/ps) and the standard deviation around it (eV/atom)."""
    fit = np.polyfit(time, energy, 1)
    return fit[0], np.std(energy - np.polyval(fit, time))


def main():
    fig, ax = plt.subplots(figsize=(7, 4))
    first = None  # (time, energy) of the first run; call C's branches start from its state at 75 ps
    records = []
    for label, (model, timestep_fs, dtype, machine, screen, files) in RUNS.items():
        time, energy = load(files)
        window = (time >= 75.0) & (time <= 95.0)
        if not window.any():  # a run of its own: its first 20 ps of NVE
            window = time <= time[0] + 20.0
        slope, fluctuation = linear_drift(time[window], energy[window])
        whole = linear_drift(time, energy)[0]
        print(
            f"{label:30s} {time[0]:6.1f}-{time[-1]:6.1f} ps: drift {1e6 * whole:+7.2f} "
            f"ueV/atom/ps over the run; in {time[window][0]:.0f}-{time[window][-1]:.0f} ps {1e6 * slope:+7.2f} "
            f"ueV/atom/ps, fluctuation {1e6 * fluctuation:.0f} ueV/atom; "
            f"E(end) - E(start) {1e3 * (energy[-1] - energy[0]):+.3f} meV/atom"
        )
        records.append(
            {
                "run": label, "system": "water_192", "pair_style": "mliap/halo", "card": card(machine),
                "model": model, "timestep_fs": timestep_fs, "dtype": dtype, "start_ps": float(time[0]),
                "end_ps": float(time[-1]), "drift_ueV_per_atom_ps": 1e6 * whole,
                "window_ps": [float(time[window][0]), float(time[window][-1])],
                "window_drift_ueV_per_atom_ps": 1e6 * slope, "window_fluctuation_ueV_per_atom": 1e6 * fluctuation,
                "energy_change_meV_per_atom": 1e3 * (energy[-1] - energy[0]),
                "nvt_ms_per_step": nvt_ms_per_step(screen),
            }
        )  # fmt: skip
        # each curve from its own start; a branch drawn from where the first run was when it branched
        start = 0.0
        if first is None:
            first = time, energy - energy[0]
        elif time[0] > first[0][0]:
            start = np.interp(time[0], *first)
        ax.plot(time, 1e3 * (energy - energy[0] + start), lw=1, label=label)
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("E_total - E_total(start) (meV/atom)")
    ax.set_title("192 waters, NVE through mliap/halo on an H100")
    ax.legend()
    fig.tight_layout()
    fig.savefig(HERE / "nve_drift.png", dpi=100)
    (HERE / "nve_records.json").write_text(json.dumps(records, indent=1) + "\n")


if __name__ == "__main__":
    main()
