"""Where the time of a compiled C++ step (`pair_style mliap/aoti`) goes, against LAMMPS alone.

Takes LAMMPS inputs that run `mliap/aoti` (the in.bench of a case folder that `run.py lammps`
writes, runs/bench_lammps/<system>_mliap_aoti_<device>_<dtype>_analytic/, or any input: its `run`
lines are dropped) and runs each in this process through LAMMPS's Python module, three times:

- ``step``: the input as it is (CUDA graphs as the environment says), a warm-up then --steps
  timed steps: ms per step and LAMMPS's own sections per step (Pair holds the whole plugin step:
  pairs, the package's call, host copies; Neigh the neighbour lists; Comm the ghost atoms);
- ``lammps_alone``: the same box with `pair_style zero` at the package's cutoff and the same
  full neighbour list: what LAMMPS costs without any model (lists, ghosts, integration), over at
  least 200 steps so that its lists' rebuilds count;
- ``profile``: torch.profiler over --steps steps without CUDA graphs (a replay hides its
  kernels): the operations that take most of the step, per step, by device time on a GPU and by
  CPU time on a CPU.

So ``step`` - ``lammps_alone`` is the plugin's step, and the profile says which of its parts cost.
Writes one JSON record per input and kind to --out, and the profiler's full tables beside it
(<out>.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

from coupling import lammps_sections
from lammps_md import cpu_name, gpu_name

from mlff_distiller.lammps.md import LOOP_TIME

ROOT = Path(__file__).resolve().parent.parent
# the plugin's line at pair_style (pair_mliap_aoti.cpp): what the package is
PACKAGE_LINE = re.compile(
    r"^mliap/aoti: .* \((?P<method>\w+) (?P<dtype>\w+), elements .*, cutoff (?P<cutoff>[0-9.]+) A\)", re.M
)
TOP_OPERATIONS = 25
ALONE_STEPS = 200  # LAMMPS alone is cheap: enough steps for its neighbour lists' rebuilds to count


def neighbour_builds(log: str) -> int:
    return int(re.findall(r"Neighbor list builds = (\d+)", log)[-1])


def lines_without_runs(script: str) -> str:
    return "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("run "))


def lammps_alone(script: str, cutoff: float) -> str:
    """The input with its pair style replaced by `pair_style zero` (a full list at the cutoff)."""
    kept = [line for line in script.splitlines() if not line.lstrip().startswith(("pair_style", "pair_coeff"))]
    at = next(i for i, line in enumerate(kept) if line.lstrip().startswith("read_data")) + 1
    return "\n".join(kept[:at] + [f"pair_style zero {cutoff} full", "pair_coeff * *"] + kept[at:])


def synchronise() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed_run(script: str, log: Path, warmup: int, steps: int) -> dict:
    """One LAMMPS instance: the script, a warm-up run, then `steps` timed steps (LAMMPS's loop
    time: the run's set-up, its first neighbour list included, is not in it)."""
    from lammps import lammps

    lmp = lammps(cmdargs=["-nocite", "-log", str(log), "-screen", "none"])
    try:
        lmp.commands_string(script)
        lmp.command(f"run {warmup}")
        lmp.command(f"run {steps}")
        atoms = lmp.get_natoms()
    finally:
        lmp.close()
    text = log.read_text()
    return {
        "atoms": atoms,
        "cuda_graphs": "CUDA graphs" in text,  # the plugin's line at pair_style
        "steps": steps,
        "ms_per_step": 1e3 * float(LOOP_TIME.findall(text)[-1][0]) / steps,
        "sections_ms_per_step": lammps_sections(text, steps),
        "neighbour_builds": neighbour_builds(text),
    }


def profiled_run(script: str, log: Path, warmup: int, steps: int) -> tuple[list[dict], str]:
    """The script's steps under torch.profiler, CUDA graphs off: (the top operations per step,
    the profiler's tables)."""
    import torch
    from lammps import lammps

    cuda = torch.cuda.is_available()
    activities = [torch.profiler.ProfilerActivity.CPU] + [torch.profiler.ProfilerActivity.CUDA] * cuda
    setting = os.environ.get("MLFF_CUDA_GRAPHS")
    os.environ["MLFF_CUDA_GRAPHS"] = "0"  # read when the plugin loads the package
    lmp = lammps(cmdargs=["-nocite", "-log", str(log), "-screen", "none"])
    try:
        lmp.commands_string(script)
        lmp.command(f"run {warmup}")
        synchronise()
        with torch.profiler.profile(activities=activities) as profile:
            lmp.command(f"run {steps}")
            synchronise()
    finally:
        lmp.close()
        os.environ.pop("MLFF_CUDA_GRAPHS")
        if setting is not None:
            os.environ["MLFF_CUDA_GRAPHS"] = setting
    averages = profile.key_averages()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    top = sorted(averages, key=lambda a: getattr(a, key), reverse=True)[:TOP_OPERATIONS]
    operations = [
        {
            "name": a.key,
            "calls_per_step": a.count / steps,
            "self_device_ms_per_step": a.self_device_time_total / 1e3 / steps,
            "self_cpu_ms_per_step": a.self_cpu_time_total / 1e3 / steps,
        }
        for a in top
    ]
    tables = "\n".join(
        averages.table(sort_by=s, row_limit=40, max_name_column_width=80)
        for s in ([key] * cuda + ["self_cpu_time_total"])
    )
    return operations, tables


def profile_input(path: Path, warmup: int, steps: int) -> tuple[list[dict], str]:
    """The three runs of one input (run in its own folder, as `run.py lammps` runs it)."""
    import torch

    script = path.read_text()
    if not re.search(r"^\s*pair_style\s+mliap/aoti\s", script, re.M):
        raise SystemExit(f"{path}: no `pair_style mliap/aoti` line; profile an input that runs mliap/aoti")
    script = lines_without_runs(script)
    previous = Path.cwd()
    os.chdir(path.parent)
    try:
        step = timed_run(script, path.parent / "log.step", warmup, steps)
        package = PACKAGE_LINE.search((path.parent / "log.step").read_text())
        alone_script = lammps_alone(script, float(package["cutoff"]))
        alone = timed_run(alone_script, path.parent / "log.alone", warmup, max(steps, ALONE_STEPS))
        operations, tables = profiled_run(script, path.parent / "log.profile", warmup, steps)
    finally:
        os.chdir(previous)
    common = {
        "input": str(path),
        "system": path.parent.name.split("_mliap")[0],
        "device": gpu_name() or cpu_name(),
        "torch": torch.__version__,
        "dtype": package["dtype"],
        "method": package["method"],
        "ranks": 1,
    }
    records = [
        {**common, "kind": "step", "pair_style": "mliap/aoti", **step},
        {**common, "kind": "lammps_alone", "pair_style": "zero", **alone, "cuda_graphs": False},
        {
            **common,
            "kind": "profile",
            "pair_style": "mliap/aoti",
            "cuda_graphs": False,
            "steps": steps,
            "operations": operations,
        },
    ]
    return records, f"===== {path}\n{tables}\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", type=lambda p: Path(p).absolute(), help="LAMMPS inputs running mliap/aoti")
    parser.add_argument("--steps", type=int, default=100, help="timed and profiled steps (default 100)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "step_profile.json")
    args = parser.parse_args(argv)
    records, tables = [], []
    for path in args.inputs:
        new, text = profile_input(path, args.warmup, args.steps)
        records += new
        tables.append(text)
        step, alone = new[0], new[1]
        print(
            f"{step['system']}: {step['ms_per_step']:.3f} ms per step, LAMMPS alone {alone['ms_per_step']:.3f} ms "
            f"({step['device']}); top operations per step:"
        )
        for op in new[2]["operations"][:8]:
            print(
                f"  {op['self_device_ms_per_step']:8.3f} ms device {op['self_cpu_ms_per_step']:8.3f} ms CPU  {op['name'][:70]}"
            )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(records, indent=1))  # after every input: a cut run keeps its records
        args.out.with_suffix(".txt").write_text("".join(tables))
    print(f"wrote {args.out} and {args.out.with_suffix('.txt')}")
    return 0
