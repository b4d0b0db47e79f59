"""Rank scaling of `pair_style mliap/halo`, and the same model in Python, from prepared files: for
machines with more free cores than the one the project is developed on, with any LAMMPS that
loads the plugin (needs torch and the mlff_distiller package on its Python path, not ASE).

    # where mlff-distiller is installed: water boxes, their periodic graphs, the model exported
    python benchmarks/run.py plugin-scaling prepare DIR --molecules 343 2744 [--model default]
    # anywhere:
    python benchmarks/run.py plugin-scaling run DIR --ranks 1 2 4 8 [--lmp lmp] [--mpirun mpirun]
        [--plugin mlffplugin.so]

`run` prints, per box, one evaluation of the model in Python on the periodic graph (no ghosts),
the plugin's time per MD step on each number of ranks (one thread per rank, the fastest of a few
single steps), the ratios, and writes DIR/scaling.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

from mlff_distiller.lammps.inputs import plugin_path
from mlff_distiller.model.painn import DTYPES


def prepare(args) -> None:
    from mlff_distiller.structures import random_water_box
    from mlff_distiller.lammps.export import export
    from mlff_distiller.model.graph import graph_from_atoms
    from mlff_distiller.model.io import load_model

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from plugin_benchmark import model_file

    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    source = model_file(args.model, out)
    (out / "model.pt").write_bytes(Path(source).read_bytes())
    export(source, out / "model.mliap", dtype=args.dtype)
    model = load_model(source)
    for n in args.molecules:
        atoms = random_water_box(n, 1.0, 0)
        atoms.wrap()
        atoms.write(out / f"water_{len(atoms)}.data", format="lammps-data", specorder=["H", "O"], masses=True)
        g = graph_from_atoms([atoms], model.elements, model.cutoff)
        torch.save({"species": g.species, "edge_i": g.edge_i, "edge_j": g.edge_j, "r_ij": g.r_ij},
                   out / f"water_{len(atoms)}.graph.pt")
    (out / "settings.json").write_text(json.dumps({"dtype": args.dtype, "elements": "H O"}))
    print(f"prepared {out}")


def python_eval(directory: Path, graph_file: Path, dtype: str, repeats: int) -> float:
    from mlff_distiller.model.io import load_model

    torch.set_num_threads(1)
    model = load_model(directory / "model.pt", DTYPES[dtype])
    g = torch.load(graph_file)
    times = []
    with torch.inference_mode():
        for _ in range(repeats + 1):
            start = time.perf_counter()
            model.energies_and_edge_gradients(g["species"], g["edge_i"], g["edge_j"], g["r_ij"].to(DTYPES[dtype]))
            times.append(time.perf_counter() - start)
    return min(times[1:])


def command_path(command: str) -> str:
    """A command as given (found on PATH) or, when it names a file, that file's absolute path:
    LAMMPS runs in another folder."""
    return str(Path(command).resolve()) if os.sep in command else command


def lammps_step(directory: Path, data: Path, ranks: int, steps: int, args) -> float:
    work = directory / f"{data.stem}_{ranks}"
    work.mkdir(exist_ok=True)
    singles = "\n".join(["run 1 pre no post no"] * (steps + 1))
    (work / "in.lmp").write_text(f"""
units metal
atom_style atomic
boundary p p p
newton on
read_data {data.resolve()}
neighbor 2.0 bin
plugin load {args.plugin}
pair_style mliap/halo {(directory / 'model.mliap').resolve()}
pair_coeff * * H O
velocity all create 300 12345 mom yes rot yes
fix nve all nve
run 0
{singles}
""")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "MLFF_COMPILE": os.environ.get("MLFF_COMPILE", "1")}  # compiled on every rank, as users get it
    cmd = [command_path(args.mpirun), "-np", str(ranks), *args.mpirun_args.split(), command_path(args.lmp), "-in", "in.lmp",
           "-nocite"]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"LAMMPS failed ({' '.join(cmd)}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    loops = [float(t) for t in re.findall(r"Loop time of (\S+) on \d+ procs for 1 steps", proc.stdout)]
    return min(loops[-steps:])


def run(args) -> None:
    directory = Path(args.dir)
    dtype = json.loads((directory / "settings.json").read_text())["dtype"]
    results = {"dtype": dtype, "cpus": os.cpu_count(), "compiled": os.environ.get("MLFF_COMPILE", "1") != "0",
               "boxes": {}}
    for data in sorted(directory.glob("water_*.data"), key=lambda p: int(p.stem.split("_")[1])):
        atoms = int(data.stem.split("_")[1])
        small = atoms < 3000
        row = {"python_s_per_eval": python_eval(directory, data.with_suffix(".graph.pt"), dtype, 4 if small else 2)}
        for ranks in args.ranks:
            row[f"plugin_s_per_step_{ranks}"] = lammps_step(directory, data, ranks, 4 if small else 2, args)
            print(atoms, ranks, row[f"plugin_s_per_step_{ranks}"], flush=True)
        row["ratio_1_rank_vs_python"] = row["plugin_s_per_step_1"] / row["python_s_per_eval"]
        for ranks in args.ranks[1:]:
            if f"plugin_s_per_step_{ranks}" in row:
                row[f"speedup_{ranks}_vs_1"] = row["plugin_s_per_step_1"] / row[f"plugin_s_per_step_{ranks}"]
        results["boxes"][atoms] = row
        print(atoms, json.dumps(row), flush=True)
    (directory / "scaling.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("dir")
    p.add_argument("--molecules", type=int, nargs="+", default=[343, 2744])
    p.add_argument("--model", default="default")
    p.add_argument("--dtype", default="float64", choices=list(DTYPES))
    p = sub.add_parser("run")
    p.add_argument("dir")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    bin_dir = Path(sys.executable).parent
    p.add_argument("--lmp", default=str(bin_dir / "lmp"))
    p.add_argument("--mpirun", default=str(bin_dir / "mpirun"))
    p.add_argument("--mpirun-args", default="", help="extra mpirun options, e.g. '--bind-to core'")
    p.add_argument("--plugin", default=str(plugin_path()))
    args = parser.parse_args(argv)
    prepare(args) if args.command == "prepare" else run(args)


if __name__ == "__main__":
    main()
