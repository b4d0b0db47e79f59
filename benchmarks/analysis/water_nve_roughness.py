"""Why v2's liquid water does not conserve energy at 0.5 fs where v1 does (issue 24), on a CPU.

    python benchmarks/analysis/water_nve_roughness.py [--parts liquid single] [--molecules 64] [--out FILE.json]
        [--equilibrate-with v1|v2] [--models v1 v2] [--nve-fs FS] [--skip-frequencies] [--model NAME=FILE]

From one equilibrated state (v1 or ``--equilibrate-with``, Langevin at 300 K), NVE runs of v1 and v2 (or ``--models``;
``--model NAME=FILE`` names another model file for both options) at 0.5 and 0.25 fs
(ASE's velocity Verlet, float64 models): the fluctuation of the total energy, which Verlet's error
makes grow with the timestep squared, for each model. Then where v2's error comes from: the largest
step-to-step jumps of its total energy at 0.5 fs against the geometry at those steps (the shortest
O-H bond, the shortest intermolecular O...H and H...H distances), and the highest vibrational
frequencies of the final configuration under each model (mass-weighted Hessian by finite
differences of the forces). Part ``single``: one water in vacuum, one O-H bond stretched and let
go, NVE at 0.5, 0.25 and 0.125 fs per model: whether the same scaling shows inside one molecule.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from ase import units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
from ase.build import molecule
from ase.md.verlet import VelocityVerlet
from ase.units import _amu, _c, _e

from mlff_distiller.distill.distortions import hessian, vibrational_modes
from mlff_distiller.model.calculator import StudentCalculator
from mlff_distiller.structures import random_water_box

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import MODELS, add_model_option, register_models  # noqa: E402


def equilibrated(n_molecules: int, steps: int, seed: int = 0, model: str = "v1"):
    atoms = random_water_box(n_molecules, 1.0, seed=seed)
    atoms.calc = StudentCalculator(MODELS[model])
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(seed))
    Stationary(atoms)
    Langevin(atoms, 0.5 * units.fs, temperature_K=300, friction=0.02, rng=np.random.default_rng(seed)).run(steps)
    return atoms


def contacts(atoms) -> dict:
    """Shortest O-H bond, intermolecular O...H and H...H distances (molecules are O,H,H in order)."""
    d = atoms.get_all_distances(mic=True)
    molecule = np.arange(len(atoms)) // 3
    same = molecule[:, None] == molecule[None, :]
    is_o = np.array([s == "O" for s in atoms.get_chemical_symbols()])
    is_h = ~is_o
    off_diagonal = ~np.eye(len(atoms), dtype=bool)
    return {
        "oh_bond_min": float(d[same & is_o[:, None] & is_h[None, :]].min()),
        "oh_bond_max": float(d[same & is_o[:, None] & is_h[None, :]].max()),
        "oh_inter_min": float(d[~same & is_o[:, None] & is_h[None, :]].min()),
        "hh_inter_min": float(d[~same & is_h[:, None] & is_h[None, :] & off_diagonal].min()),
    }


def nve(start, model: str, dt_fs: float, duration_fs: float) -> dict:
    atoms = start.copy()
    atoms.set_velocities(start.get_velocities())
    atoms.calc = StudentCalculator(MODELS[model])
    n = len(atoms)
    energies, geometry = [], []

    def record():
        energies.append(atoms.get_potential_energy() + atoms.get_kinetic_energy())
        geometry.append(contacts(atoms))

    dyn = VelocityVerlet(atoms, dt_fs * units.fs)
    dyn.attach(record, interval=1)
    dyn.run(int(round(duration_fs / dt_fs)))
    e = np.array(energies) / n
    jumps = np.abs(np.diff(e))
    worst = np.argsort(jumps)[-5:][::-1]
    return {
        "model": model,
        "dt_fs": dt_fs,
        "steps": len(e) - 1,
        "energy_std_uev_per_atom": float(e.std() * 1e6),
        "drift_uev_per_atom_per_ps": float(np.polyfit(np.arange(len(e)) * dt_fs / 1000, e, 1)[0] * 1e6),
        "largest_jumps": [
            {"step": int(k + 1), "jump_uev_per_atom": float(jumps[k] * 1e6), **geometry[k + 1]} for k in worst
        ],
        "typical_contacts": {key: float(np.median([g[key] for g in geometry])) for key in geometry[0]},
        "final": atoms,
    }


def top_frequencies(atoms, model: str, count: int = 5) -> list[float]:
    """The highest vibrational frequencies (cm^-1) of ``atoms`` under ``model``."""
    w2, _ = vibrational_modes(atoms, hessian(atoms, StudentCalculator(MODELS[model]), delta=0.005))
    cm = np.sign(w2) * np.sqrt(np.abs(w2) * _e / _amu) * 1e10 / (2 * np.pi * _c * 100)
    return sorted(float(x) for x in cm[-count:])[::-1]


def single_water(model: str, stretch: float = 0.12, duration_fs: float = 400.0) -> dict:
    """Total-energy std (ueV/atom) of one water whose first O-H bond starts ``stretch`` A long,
    at each timestep: on a smooth surface it falls 4x per halving."""
    stds = {}
    for dt in (0.5, 0.25, 0.125):
        atoms = molecule("H2O")
        atoms.positions[1] += stretch * (atoms.positions[1] - atoms.positions[0]) / atoms.get_distance(0, 1)
        atoms.calc = StudentCalculator(MODELS[model])
        energies = []
        dyn = VelocityVerlet(atoms, dt * units.fs)
        dyn.attach(lambda: energies.append(atoms.get_potential_energy() + atoms.get_kinetic_energy()))
        dyn.run(int(round(duration_fs / dt)))
        stds[dt] = float(np.std(energies) / len(atoms) * 1e6)
    return stds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=64)
    parser.add_argument("--equilibrate-steps", type=int, default=1000)
    parser.add_argument("--nve-fs", type=float, default=200.0, help="length of each NVE run")
    parser.add_argument("--parts", nargs="+", default=["liquid", "single"], choices=["liquid", "single"])
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--equilibrate-with", default="v1", help="the model of the Langevin run (default v1)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="the models run in NVE (default v1 v2)")
    parser.add_argument("--skip-frequencies", action="store_true", help="leave out the Hessians (liquid part)")
    add_model_option(parser)
    args = parser.parse_args(argv)
    register_models(parser, args, args.equilibrate_with, *args.models)
    report = {}
    if "single" in args.parts:
        report["single_water_energy_std_uev_per_atom"] = {}
        for model in MODELS:
            stds = single_water(model)
            report["single_water_energy_std_uev_per_atom"][model] = stds
            print(
                f"one water, O-H stretched 0.12 A, {model}: total energy std (ueV/atom) by timestep {stds}", flush=True
            )
    if "liquid" in args.parts:
        report.update(liquid(args))
    if args.out:
        from mlff_distiller.files import atomic_write_text

        atomic_write_text(args.out, json.dumps(report, indent=1))
        print(f"wrote {args.out}")
    return 0


def liquid(args) -> dict:
    start = equilibrated(args.molecules, args.equilibrate_steps, model=args.equilibrate_with)
    print(
        f"{len(start)} atoms, equilibrated with {args.equilibrate_with} at 300 K; contacts: {contacts(start)}",
        flush=True,
    )
    runs = []
    for model in args.models:
        for dt in (0.5, 0.25):
            run = nve(start, model, dt, args.nve_fs)
            print(
                f"{model} dt {dt} fs: total energy std {run['energy_std_uev_per_atom']:.1f} ueV/atom, drift "
                f"{run['drift_uev_per_atom_per_ps']:+.1f} ueV/atom/ps over {run['steps']} steps",
                flush=True,
            )
            runs.append(run)
    for run in runs:
        if run["dt_fs"] == 0.5:
            print(f"{run['model']} at 0.5 fs, typical contacts {run['typical_contacts']}")
            for jump in run["largest_jumps"]:
                print(f"    {jump}")
    frequencies = {}
    final = next(r["final"] for r in runs if r["model"] == args.models[0] and r["dt_fs"] == 0.25)
    for model in [] if args.skip_frequencies else args.models:
        frequencies[model] = top_frequencies(final, model)
        print(f"{model}: highest frequencies of one liquid configuration (cm^-1): {frequencies[model]}", flush=True)
    runs = [{k: v for k, v in r.items() if k != "final"} for r in runs]
    return {
        "atoms": len(start),
        "equilibrated_with": args.equilibrate_with,
        "runs": runs,
        "highest_frequencies_cm1": frequencies,
    }


if __name__ == "__main__":
    sys.exit(main())
