"""Memory of the plugin pair style `mliap/halo` against system size: periodic water of about
2,000, 8,000 and 30,000 atoms on one rank, a small PaiNN (16 features, 3 layers, 5 A cutoff).

    .venv/bin/python benchmarks/run.py plugin-memory [--sizes 667 2744 10000]

Prints, per size, LAMMPS's per-rank memory figure (atoms, neighbour lists, communication buffers
and the pair style's own arrays) and the peak resident memory of the process (LAMMPS, Python,
torch and the model's temporaries), each also per atom; writes runs/plugin_memory.json. Both grow
linearly with the atoms. (Stock ML-IAP allocates natomneigh x npairs ints: 498 MB at 1,536 atoms,
14 GB at 8,232 atoms by LAMMPS's own figure; see the project brief.)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import torch

from mlff_distiller.structures import random_water_box
from mlff_distiller.files import atomic_write_text
from mlff_distiller.lammps.export import export
from mlff_distiller.lammps.inputs import plugin_path
from mlff_distiller.model.io import save_model
from mlff_distiller.model.painn import PaiNN, PaiNNConfig

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[667, 2744, 10000], help="water molecules")
    parser.add_argument("--out", default=str(ROOT / "runs" / "plugin_memory.json"))
    args = parser.parse_args(argv)
    work = ROOT / "runs" / "plugin_memory"
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = PaiNN(PaiNNConfig(elements=["H", "O"], n_features=16, n_layers=3, cutoff=5.0))
    save_model(model, work / "small.pt")
    model_file = export(work / "small.pt", work / "small.mliap")

    rows = []
    for n_molecules in args.sizes:
        atoms = random_water_box(n_molecules, 1.0, 0)
        atoms.wrap()
        run = work / f"water_{len(atoms)}"
        run.mkdir(exist_ok=True)
        atoms.write(run / "structure.data", format="lammps-data", specorder=["H", "O"], masses=True)
        (run / "in.lmp").write_text(f"""
units metal
atom_style atomic
boundary p p p
newton on
read_data structure.data
neighbor 2.0 bin
plugin load {plugin_path()}
pair_style mliap/halo {model_file}
pair_coeff * * H O
run 0
info memory
""")
        proc = subprocess.run(
            [str(BIN / "lmp"), "-in", "in.lmp", "-nocite"],
            cwd=run,
            capture_output=True,
            text=True,
            env={
                **os.environ,
                "OMP_NUM_THREADS": "1",  # eager: compiling's own memory would hide the plugin's
                "MLFF_COMPILE": os.environ.get("MLFF_COMPILE", "1"),
            },
        )
        if proc.returncode != 0:
            sys.exit(f"LAMMPS failed in {run}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        lammps_mb = float(re.search(r"Per MPI rank memory allocation \(min/avg/max\) = \S+ \| (\S+)", proc.stdout)[1])
        rss_mb = float(re.search(r"Maximum resident set size: (\S+) Mbyte", proc.stdout)[1])
        pairs = int(re.search(r"Total # of neighbors = (\d+)", proc.stdout)[1])
        rows.append(
            {
                "atoms": len(atoms),
                "neighbour_list_pairs": pairs,
                "lammps_memory_mb": lammps_mb,
                "peak_rss_mb": rss_mb,
                "lammps_kb_per_atom": 1024 * lammps_mb / len(atoms),
                "rss_kb_per_atom": 1024 * rss_mb / len(atoms),
            }
        )
        print(rows[-1], flush=True)

    print(f"\n{'atoms':>7} {'LAMMPS MB':>10} {'KB/atom':>8} {'peak RSS MB':>12} {'KB/atom':>8}")
    for r in rows:
        print(
            f"{r['atoms']:>7} {r['lammps_memory_mb']:>10.1f} {r['lammps_kb_per_atom']:>8.2f} "
            f"{r['peak_rss_mb']:>12.0f} {r['rss_kb_per_atom']:>8.1f}"
        )
    first, last = rows[0], rows[-1]
    if last["atoms"] > first["atoms"]:  # growth needs two sizes
        print(
            f"{last['atoms'] / first['atoms']:.1f}x the atoms: {last['lammps_memory_mb'] / first['lammps_memory_mb']:.1f}x "
            f"LAMMPS's figure, {last['peak_rss_mb'] / first['peak_rss_mb']:.1f}x the peak RSS "
            f"({(last['peak_rss_mb'] - first['peak_rss_mb']) / (last['atoms'] - first['atoms']) * 1024:.1f} KB per added atom)"
        )
    out = Path(args.out)
    atomic_write_text(out, json.dumps(rows, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
