"""The one entry point of the benchmarks: `python benchmarks/run.py SUITE [options]`.

    lammps      ms per LAMMPS MD step against atoms, GPU and one CPU core (lammps_md.py)
    model-cpu   the model alone on one CPU thread: analytic vs autograd vs schnetpack (model_cpu.py)
    model-gpu   the model alone on a GPU: eager, CUDA graphs, compiled graphs (gpu_model.py)
    coupling    where a LAMMPS step's time goes, with the model or a zero-cost stand-in (coupling.py)
    step-profile    where the compiled C++ step's time goes (mliap/aoti), against LAMMPS alone (step_profile.py)
    plugin          the plugin's step against the model in Python, 2 ranks against 1 (plugin_benchmark.py)
    plugin-memory   LAMMPS's memory figure and peak RSS of the plugin against atoms (plugin_memory.py)
    plugin-scaling  the plugin over 1..N ranks, prepared here and run anywhere (plugin_scaling.py)
    results-index   results/INDEX.md: which command and commit made each result file (results_index.py)

Each suite writes JSON records under results/ (or --out) and says where; `SUITE --help`
lists its options. benchmarks/gpu_session.sh runs the lammps suite on a GPU machine;
benchmarks/analysis/ holds the scripts that summarise runs kept in results/ (NVE drift, active
learning, water's frequencies).
"""

import importlib
import sys
from pathlib import Path

SUITES = {
    "lammps": "lammps_md",
    "model-cpu": "model_cpu",
    "model-gpu": "gpu_model",
    "coupling": "coupling",
    "step-profile": "step_profile",
    "plugin": "plugin_benchmark",
    "plugin-memory": "plugin_memory",
    "plugin-scaling": "plugin_scaling",
    "results-index": "results_index",
}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in SUITES:
        print(__doc__)
        return 2
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    return importlib.import_module(SUITES[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
