"""Rank scaling of `pair_style mliap/halo`, and the same model in Python, from prepared files: for
machines with more free cores than the one the project is developed on, with any LAMMPS that
loads the plugin (needs torch and the mlff_distiller package on its Python path, not ASE).

    # where mlff-distiller is installed: water boxes, their periodic graphs, the model exported
    python benchmarks/run.py plugin-scaling prepare DIR --molecules 343 2744 [--model default]
    # anywhere:
    python benchmarks/run.py plugin-scaling run DIR --ranks 1 2 4 8 [--lmp lmp] [--mpirun mpirun]
        [--plugin mlffplugin.so]

    # anywhere with the package: how much one rank's share of a box costs on one core alone
    python benchmarks/run.py plugin-scaling rank-graph --molecules 2744 --grid 4 2 2 [--out FILE]

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

from mlff_distiller.files import atomic_write_text
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
        torch.save(
            {"species": g.species, "edge_i": g.edge_i, "edge_j": g.edge_j, "r_ij": g.r_ij},
            out / f"water_{len(atoms)}.graph.pt",
        )
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
pair_style mliap/halo {(directory / "model.mliap").resolve()}
pair_coeff * * H O
velocity all create 300 12345 mom yes rot yes
fix nve all nve
run 0
{singles}
""")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OMPI_ALLOW_RUN_AS_ROOT": "1",
        "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "MLFF_COMPILE": os.environ.get("MLFF_COMPILE", "1"),
    }  # compiled on every rank, as users get it
    cmd = [
        command_path(args.mpirun),
        "-np",
        str(ranks),
        *args.mpirun_args.split(),
        command_path(args.lmp),
        "-in",
        "in.lmp",
        "-nocite",
    ]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"LAMMPS failed ({' '.join(cmd)}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    loops = [float(t) for t in re.findall(r"Loop time of (\S+) on \d+ procs for 1 steps", proc.stdout)]
    return min(loops[-steps:])


def run(args) -> None:
    directory = Path(args.dir)
    dtype = json.loads((directory / "settings.json").read_text())["dtype"]
    results = {
        "dtype": dtype,
        "cpus": os.cpu_count(),
        "compiled": os.environ.get("MLFF_COMPILE", "1") != "0",
        "boxes": {},
    }
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
    atomic_write_text(directory / "scaling.json", json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


def subdomain_graph(atoms, grid, halo: float, cutoff: float):
    """The atoms one rank of a ``grid`` decomposition holds (its owned atoms first, then the ghosts
    within ``halo`` of its subdomain) and the pairs the plugin gives its model: each owned atom
    with every atom within ``cutoff``. Returns (numbers, edge_i, edge_j, r_ij, n_owned)."""
    import numpy as np
    from scipy.spatial import cKDTree

    lengths, positions = atoms.cell.lengths(), atoms.get_positions(wrap=True)
    shifts = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])
    images = (positions[None] + shifts[:, None] * lengths).reshape(-1, 3)
    numbers = np.tile(atoms.numbers, len(shifts))
    size = lengths / np.asarray(grid)
    central = np.repeat(np.all(shifts == 0, axis=1), len(atoms))
    owned = central & np.all((images >= 0) & (images < size), axis=1)
    near = np.all((images >= -halo) & (images < size + halo), axis=1)
    order = np.concatenate([np.flatnonzero(owned), np.flatnonzero(near & ~owned)])
    points, n_owned = images[order], int(owned.sum())
    neighbours = cKDTree(points).query_ball_point(points[:n_owned], cutoff)
    edge_i = np.concatenate([np.full(len(n) - 1, i) for i, n in enumerate(neighbours)])
    edge_j = np.concatenate([[j for j in n if j != i] for i, n in enumerate(neighbours)])
    return numbers[order], edge_i, edge_j, points[edge_j] - points[edge_i], n_owned


def rank_graph(args) -> None:
    """One rank's graph of a decomposition against the whole box, each timed on one core alone
    (eager analytic model, no exchange): whether ghost rows make a rank's share dearer per atom."""
    from ase.data import chemical_symbols

    from mlff_distiller.model.graph import species_indices
    from mlff_distiller.model.io import load_model
    from mlff_distiller.structures import random_water_box

    torch.set_num_threads(1)
    dtype = DTYPES[args.dtype]
    model = load_model(args.model, dtype)
    atoms = random_water_box(args.molecules, 1.0, 0)
    halo = model.cutoff + args.skin
    results = {"molecules": args.molecules, "dtype": args.dtype, "halo_A": halo, "graphs": {}}
    for name, grid in (("whole box", [1, 1, 1]), ("one rank of " + "x".join(map(str, args.grid)), args.grid)):
        numbers, edge_i, edge_j, r_ij, n_owned = subdomain_graph(atoms, grid, halo, model.cutoff)
        species = torch.as_tensor(species_indices([chemical_symbols[z] for z in numbers], model.elements))
        weights = torch.zeros(len(numbers), dtype=dtype)
        weights[:n_owned] = 1
        inputs = (
            species,
            torch.as_tensor(edge_i),
            torch.as_tensor(edge_j),
            torch.as_tensor(r_ij, dtype=dtype),
            weights,
        )
        times = []
        with torch.inference_mode():
            for _ in range(args.repeats + 1):
                start = time.perf_counter()
                model.energies_and_weighted_edge_gradients(*inputs)
                times.append(time.perf_counter() - start)
        seconds = min(times[1:])
        results["graphs"][name] = row = {
            "grid": list(grid),
            "owned": n_owned,
            "rows": len(numbers),
            "rows_per_owned": len(numbers) / n_owned,
            "edges": len(edge_i),
            "edges_per_owned": len(edge_i) / n_owned,
            "ms": 1e3 * seconds,
            "us_per_owned_atom": 1e6 * seconds / n_owned,
        }
        print(
            f"{name:<22} owned {n_owned:6d}  rows {len(numbers):6d} ({row['rows_per_owned']:.2f} per owned)  "
            f"edges {len(edge_i):7d} ({row['edges_per_owned']:.1f} per owned)  {row['ms']:9.1f} ms  "
            f"{row['us_per_owned_atom']:.0f} us per owned atom",
            flush=True,
        )
    if args.out:
        atomic_write_text(args.out, json.dumps(results, indent=1) + "\n")


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
    p = sub.add_parser("rank-graph")
    p.add_argument("--molecules", type=int, default=2744)
    p.add_argument("--grid", type=int, nargs=3, default=[4, 2, 2], help="LAMMPS's processor grid")
    p.add_argument("--skin", type=float, default=2.0, help="LAMMPS's neighbour skin (A): ghosts reach cutoff + skin")
    p.add_argument("--model", default="default")
    p.add_argument("--dtype", default="float32", choices=list(DTYPES))
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out")
    args = parser.parse_args(argv)
    {"prepare": prepare, "run": run, "rank-graph": rank_graph}[args.command](args)


if __name__ == "__main__":
    main()
