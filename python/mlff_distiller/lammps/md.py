"""`mlff-distiller md INPUT`: run one of the ready LAMMPS inputs with a student model and report
milliseconds per step and the energy drift (with a plot of the total energy).

The input folder is copied to a run folder (``--workdir``, by default ``runs/<input folder name>/`` in
the current directory), so inputs stay clean; the model is exported there as ``default.mliap``, and
LAMMPS runs through the venv's `mpirun` and `lmp` with the variables ``model``, ``plugin`` and
(with ``--steps``) ``steps`` set. With ``--aoti`` the export also compiles the force step
(``default.pt2``) and the run copy's `pair_style` of ``${model}`` becomes `mliap/aoti` with it: the
step then runs in C++, no Python per step.

A committee watches the run: the models of ``--committee M1 M2 ...``, or by default, for a shipped
model that ships with one, its committee (``model/io.py: shipped_committee``); ``--no-committee``
turns it off. The run copy of the input then includes ``committee.lmp`` before its first `run`,
which starts the committee watch of ``watch.py`` every ``--check-every`` steps.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import atomic_path, atomic_write_text
from ..model.painn import DTYPES
from . import watch
from .export import export, package_path
from .inputs import plugin_path

# eV/A: on the unseen-molecule benchmark, 96% of the structures where the shipped committee's
# spread passes it have a largest force error of v1 above 1 eV/A, while v1's own 300 K aspirin run
# stays below it (benchmarks/analysis/committee_threshold.py, docs/training.md)
WARN_ABOVE = 0.75
LOOP_TIME = re.compile(r"Loop time of ([0-9.eE+-]+) on (\d+) procs for (\d+) steps with (\d+) atoms")
EXPORT_NAME = "default.mliap"  # the model's export in the run folder, the inputs' ${model}
# the ready inputs' pair style of the exported model (Python steps), which --aoti replaces
PYTHON_PAIR_STYLE = re.compile(r"^([ \t]*)pair_style\s+(?:mliap unified|mliap/halo)\s+\$\{model\}.*$", re.M)


@dataclass
class MDReport:
    steps: int
    atoms: int
    ranks: int
    seconds: float
    drift_ev_per_atom: float  # E_total(end) - E_total(start), per atom
    drift_ev_per_atom_ps: float  # slope of a straight-line fit of E_total(t), per atom
    fluctuation_ev_per_atom: float  # standard deviation of E_total, per atom

    @property
    def ms_per_step(self) -> float:
        return 1e3 * self.seconds / self.steps

    def summary(self) -> str:
        return (
            f"{self.steps} steps, {self.atoms} atoms, {self.ranks} rank(s): {self.ms_per_step:.2f} ms/step "
            f"({self.atoms * self.steps / self.seconds:,.0f} atom-steps/s)\n"
            f"energy drift {self.drift_ev_per_atom:+.2e} eV/atom over the run, fitted "
            f"{self.drift_ev_per_atom_ps:+.2e} eV/atom/ps; fluctuation {self.fluctuation_ev_per_atom:.1e} eV/atom"
        )


def venv_tool(name: str) -> str:
    tool = Path(sys.prefix) / "bin" / name
    if not tool.exists():
        raise FileNotFoundError(f"{tool} not found: run `bash scripts/setup.sh` first")
    return str(tool)


def prepare_run(
    input_path: Path, model: str, method: str, dtype: str, workdir: Path | None, aoti: bool = False
) -> tuple[Path, Path]:
    """Copy the input's folder to the run folder and export the model there (aoti: its compiled step
    too, which the run copy of the input then runs); returns (folder, input file)."""
    input_path = input_path.resolve()
    if input_path.is_dir():
        candidates = sorted(input_path.glob("in.*"))
        if len(candidates) != 1:
            raise ValueError(f"{input_path} holds {len(candidates)} in.* files: name the one to run")
        input_path = candidates[0]
    if not input_path.is_file():
        raise FileNotFoundError(f"no LAMMPS input {input_path}")
    # the run copy of the input, where --aoti changes it: made before anything is written or compiled
    compiled = (
        with_compiled_step(input_path.read_text(), input_path.name, package_path(EXPORT_NAME).name) if aoti else None
    )
    workdir = Path(workdir) if workdir else Path.cwd() / "runs" / input_path.parent.name
    if workdir.resolve() == input_path.parent:
        raise ValueError(f"--workdir {workdir} is the input folder itself: choose another folder")
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create the run folder {workdir}: {exc.strerror or exc}") from exc
    for item in input_path.parent.iterdir():
        if item.is_file():
            shutil.copy2(item, workdir / item.name)
    if compiled is not None:
        atomic_write_text(workdir / input_path.name, compiled)
    export(model, workdir / EXPORT_NAME, method=method, dtype=dtype, format="aoti" if aoti else "mliap")
    return workdir, workdir / input_path.name


def with_compiled_step(script: str, name: str, package: str) -> str:
    """The input's text running the compiled step: its `pair_style` of ``${model}`` becomes
    `mliap/aoti` with the package (``pair_coeff`` reads the same), after a `plugin load` of the
    plugin where the input has none."""
    match = PYTHON_PAIR_STYLE.search(script)
    if match is None:
        raise ValueError(
            f"{name} has no `pair_style mliap unified ${{model}}` or `pair_style mliap/halo ${{model}}` line for "
            "--aoti to replace: write `plugin load ...` and `pair_style mliap/aoti FILE.pt2` into it yourself"
        )
    indent = match.group(1)
    lines = [f"{indent}pair_style mliap/aoti {package}  # set by mlff-distiller md --aoti"]
    if not re.search(r"^\s*plugin\s+load\s", script, re.M):
        lines.insert(0, f"{indent}plugin load ${{plugin}}")
    return script[: match.start()] + "\n".join(lines) + script[match.end() :]


def committee_for(model: str, asked: list[str] | None, off: bool) -> list[str]:
    """The models that watch the run: those asked for, else the committee shipped with the model."""
    from ..model.io import shipped_committee

    if off:
        return []
    if asked:
        return asked
    shipped = [str(path) for path in shipped_committee(model)]
    if shipped:
        print(f"committee watch: the {len(shipped)} models shipped with {model} (--no-committee turns it off)")
    return shipped


def add_committee_watch(input_file: Path, members: list[str], every: int, threshold: float) -> None:
    """Make the run copy of the input start the committee watch before its first `run`."""
    from ..model.io import resolve_model_path

    if len(members) < 2:
        raise ValueError("a committee needs at least two models to disagree: give two or more after --committee")
    paths = [str(resolve_model_path(m).resolve()) for m in members]
    atomic_write_text(input_file.parent / watch.SETTINGS_FILE, json.dumps({"members": paths, "threshold": threshold}))
    atomic_write_text(input_file.parent / "committee.lmp", watch.watch_lines(every))
    lines = input_file.read_text().splitlines(keepends=True)
    first_run = next((k for k, line in enumerate(lines) if re.match(r"\s*run\s", line)), None)
    if first_run is None:
        raise ValueError(f"{input_file.name} has no `run` command to watch")
    lines.insert(first_run, "include committee.lmp  # added by mlff-distiller md --committee\n")
    atomic_write_text(input_file, "".join(lines))


def energy_report(workdir: Path, log_text: str) -> MDReport:
    matches = LOOP_TIME.findall(log_text)
    if not matches:
        raise RuntimeError(f"LAMMPS printed no timing; see {workdir / 'log.lammps'}")
    seconds, ranks, steps, atoms = matches[-1]
    table = np.loadtxt(workdir / "energy.txt", comments="#", ndmin=2)
    time_ps, etotal = table[:, 1], table[:, 4]
    n = int(atoms)
    slope = np.polyfit(time_ps, etotal, 1)[0] if len(time_ps) > 1 else 0.0
    return MDReport(
        int(steps), n, int(ranks), float(seconds), (etotal[-1] - etotal[0]) / n, slope / n, float(etotal.std()) / n
    )


def plot_energy(workdir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = np.loadtxt(workdir / "energy.txt", comments="#", ndmin=2)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for column, label in ((2, "potential"), (4, "total")):
        ax.plot(table[:, 1], table[:, column] - table[0, 4], label=label, lw=1)
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("energy - E_total(0) (eV)")
    ax.legend()
    fig.tight_layout()
    path = workdir / "energy.png"
    with atomic_path(path) as temporary:
        fig.savefig(temporary, dpi=100)
    plt.close(fig)
    return path


def run_md(
    input_path: str | Path,
    model: str = "default",
    ranks: int = 1,
    method: str = "analytic",
    dtype: str = "float64",
    steps: int | None = None,
    workdir: Path | None = None,
    committee: list[str] | None = None,
    check_every: int = 100,
    warn_above: float = WARN_ABOVE,
    aoti: bool = False,
) -> MDReport:
    if aoti and method != "analytic":
        raise ValueError("--aoti runs the analytic step only (torch cannot compile autograd's ahead of time)")
    workdir, input_file = prepare_run(Path(input_path), model, method, dtype, workdir, aoti)
    if committee:
        add_committee_watch(input_file, committee, check_every, warn_above)
    cmd = [
        venv_tool("mpirun"),
        "-np",
        str(ranks),
        venv_tool("lmp"),
        "-in",
        input_file.name,
        "-nocite",
        "-var",
        "model",
        EXPORT_NAME,
        "-var",
        "plugin",
        str(plugin_path()),
    ]
    if steps:
        cmd += ["-var", "steps", str(steps)]
    print(f"running in {workdir}: {' '.join(cmd[2:])}", flush=True)
    proc = subprocess.run(cmd, cwd=workdir, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    atomic_write_text(workdir / "screen.txt", proc.stdout)
    if proc.returncode != 0:
        raise RuntimeError(
            f"LAMMPS failed (exit {proc.returncode}); the end of its output:\n"
            + "\n".join(proc.stdout.splitlines()[-15:])
        )
    report = energy_report(workdir, proc.stdout)
    plot = plot_energy(workdir)
    print(report.summary())
    if committee:
        print(watch.warnings(proc.stdout, workdir / "screen.txt"))
        print(watch.summary(workdir))
    print(f"energy plot: {plot}")
    return report


def register(subparsers) -> None:
    p = subparsers.add_parser("md", help="run a ready LAMMPS input with a model; report ms/step and drift")
    p.add_argument("input", help="an input folder holding one in.* file and its data (or the in.* file)")
    p.add_argument("--model", default="default", help="model file or shipped model name (default: default)")
    p.add_argument("--np", type=int, default=1, dest="ranks", help="MPI ranks")
    p.add_argument("--method", choices=["analytic", "autograd"], default="analytic")
    p.add_argument("--dtype", choices=list(DTYPES), default="float64")
    p.add_argument("--steps", type=int, help="override the input's number of steps")
    p.add_argument("--workdir", type=Path, help="run folder (default: runs/<input folder name> here)")
    p.add_argument(
        "--aoti",
        action="store_true",
        help="run the force step compiled ahead of time, in C++ (pair_style mliap/aoti: no Python per step; "
        "analytic only; compiling it takes a minute or more)",
    )
    watched = p.add_mutually_exclusive_group()
    watched.add_argument(
        "--committee",
        nargs="+",
        metavar="MODEL",
        help="watch the run with these models (files or shipped names): warn when their forces disagree "
        "(default: the committee shipped with a shipped model, where there is one)",
    )
    watched.add_argument("--no-committee", action="store_true", help="run without a committee watch")
    p.add_argument("--check-every", type=int, default=100, metavar="N", help="steps between committee checks")
    p.add_argument(
        "--warn-above",
        type=float,
        default=WARN_ABOVE,
        metavar="EV_PER_A",
        help=f"warn when the members' forces on an atom differ by more than this (default {WARN_ABOVE})",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    run_md(
        args.input,
        args.model,
        args.ranks,
        args.method,
        args.dtype,
        args.steps,
        args.workdir,
        committee_for(args.model, args.committee, args.no_committee),
        args.check_every,
        args.warn_above,
        args.aoti,
    )
    return 0
