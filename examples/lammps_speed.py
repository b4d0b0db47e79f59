"""Analytic vs autograd forces inside LAMMPS, same model, same input, back to back in one run.

    .venv/bin/python examples/lammps_speed.py [--model default] [--steps 500] [--inputs aspirin batch16]

Prints ms/step for each export and their ratio, and writes runs/lammps_speed.json.
"""
import argparse
import json
from pathlib import Path

from mlff_distiller.lammps.md import run_md

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--inputs", nargs="+", default=["aspirin", "batch16"])
    args = parser.parse_args()
    rows = []
    for name in args.inputs:
        timing = {}
        for method in ("analytic", "autograd"):
            report = run_md(ROOT / "inputs" / name, args.model, method=method, steps=args.steps,
                            workdir=ROOT / "runs" / f"speed_{name}_{method}")
            timing[method] = report.ms_per_step
        rows.append({"input": name, "atoms": report.atoms, **{f"{m}_ms_per_step": t for m, t in timing.items()},
                     "speedup": timing["autograd"] / timing["analytic"]})
    print(f"\n{'input':<10} {'atoms':>6} {'analytic ms/step':>17} {'autograd ms/step':>17} {'speed-up':>9}")
    for r in rows:
        print(f"{r['input']:<10} {r['atoms']:>6} {r['analytic_ms_per_step']:>17.2f} {r['autograd_ms_per_step']:>17.2f}"
              f" {r['speedup']:>8.2f}x")
    out = ROOT / "runs" / "lammps_speed.json"
    out.write_text(json.dumps(rows, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
