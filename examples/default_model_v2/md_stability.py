"""Do the unseen benchmark's molecules hold together in student MD? Langevin NVT in ASE or LAMMPS.

    OMP_NUM_THREADS=1 python examples/default_model_v2/md_stability.py default default_v2 --ps 2
    OMP_NUM_THREADS=1 python examples/default_model_v2/md_stability.py default --ps 10 --lammps \
        --out md_stability_lammps_default.json

With ``--lammps`` each run is LAMMPS (stock `pair_style mliap unified`, the model exported in
float32 and compiled as `md` runs it; `fix langevin` + `fix nve`, damping 0.1 ps, the molecule in
a shrink-wrapped box), driven from Python through the `lammps` module, with the same checks.

For each model and each molecule of ``examples/unseen_benchmark`` (RDKit/MMFF94 start), Langevin
dynamics (0.5 fs, friction 0.01/fs) at 600 K and 1500 K with the model's forces (the analytic path
LAMMPS runs, through the ASE calculator). Every 20 steps the bonds (pairs within 1.2 times the sum
of covalent radii at the start) are checked: a run fails when a bond stretches beyond 1.5 times
its starting length or two atoms not bonded at the start come within 1.1 times the sum of their
covalent radii. Prints one line per run and writes ``md_stability.json`` next to this script.
"""

import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
from ase import units
from ase.data import covalent_radii
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, ZeroRotation

from mlff_distiller.distill.sampling import conformer_to_atoms, embed_conformers, thermalize_momenta
from mlff_distiller.files import atomic_write_text
from mlff_distiller.model.calculator import StudentCalculator
from mlff_distiller.model.io import load_model

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("unseen", HERE.parent / "unseen_benchmark" / "make_benchmark.py")
unseen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(unseen)
CHECK_EVERY = 20


def bonds_and_contact_limits(atoms):
    radii = covalent_radii[atoms.numbers]
    limit = radii[:, None] + radii[None, :]
    distances = atoms.get_all_distances()
    bonded = np.triu(distances < 1.2 * limit, 1)
    return bonded, distances, limit


def run(model, atoms, temperature, steps, seed):
    """(first failing step or None, largest bond stretch ratio, closest non-bonded approach ratio)."""
    bonded, start, limit = bonds_and_contact_limits(atoms)
    nonbonded = np.triu(~bonded, 1)
    atoms.calc = StudentCalculator(model)
    rng = np.random.default_rng(seed)
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    ZeroRotation(atoms)
    dynamics = Langevin(
        atoms, timestep=0.5 * units.fs, temperature_K=temperature, friction=0.01 / units.fs, fixcm=False, rng=rng
    )
    stretch, approach = 1.0, np.inf
    for step in range(CHECK_EVERY, steps + 1, CHECK_EVERY):
        dynamics.run(CHECK_EVERY)
        d = atoms.get_all_distances()
        stretch = max(stretch, float((d[bonded] / start[bonded]).max()))
        approach = min(approach, float((d[nonbonded] / limit[nonbonded]).min()))
        if stretch > 1.5 or approach < 1.1:
            return step, stretch, approach
    return None, stretch, approach


def run_lammps(export_file, elements, atoms, temperature, steps, seed, workdir):
    """As ``run``, in LAMMPS."""
    import lammps
    import lammps.mliap

    bonded, start, limit = bonds_and_contact_limits(atoms)
    nonbonded = np.triu(~bonded, 1)
    present = [e for e in elements if e in set(atoms.get_chemical_symbols())]
    atoms = atoms.copy()
    atoms.center(vacuum=10.0)
    data = workdir / "molecule.data"
    atoms.write(data, format="lammps-data", specorder=present, masses=True)
    lmp = lammps.lammps(cmdargs=["-screen", "none", "-log", "none", "-nocite"])
    lammps.mliap.activate_mliappy(lmp)
    lmp.commands_string(f"""units metal
atom_style atomic
boundary s s s
read_data {data}
pair_style mliap unified {export_file} 0
pair_coeff * * {" ".join(present)}
velocity all create {temperature} {seed} mom yes rot yes dist gaussian
timestep 0.0005
fix heat all langevin {temperature} {temperature} 0.1 {seed} zero yes
fix move all nve
run 0""")
    n = len(atoms)
    stretch, approach, failed = 1.0, np.inf, None
    for step in range(CHECK_EVERY, steps + 1, CHECK_EVERY):
        lmp.command(f"run {CHECK_EVERY} pre no post no")
        x = np.ctypeslib.as_array(lmp.gather_atoms("x", 1, 3), shape=(3 * n,)).reshape(n, 3)
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)
        stretch = max(stretch, float((d[bonded] / start[bonded]).max()))
        approach = min(approach, float((d[nonbonded] / limit[nonbonded]).min()))
        if stretch > 1.5 or approach < 1.1:
            failed = step
            break
    lmp.close()
    return failed, stretch, approach


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--ps", type=float, default=2.0, help="picoseconds per run (default 2)")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[600.0, 1500.0])
    parser.add_argument("--lammps", action="store_true", help="run the dynamics in LAMMPS instead of ASE")
    parser.add_argument(
        "--trajectory", type=int, default=0, help="another seed for every run (default 0, the published runs')"
    )
    parser.add_argument("--out", default="md_stability.json", help="JSON file (a bare name: next to this script)")
    args = parser.parse_args()
    steps = int(round(args.ps * 2000))
    results = []
    for name in args.models:
        model = load_model(name)
        label = Path(name).stem  # a shipped name, or a model file's
        if args.lammps:
            import tempfile

            from mlff_distiller.lammps.export import export

            workdir = Path(tempfile.mkdtemp(prefix=f"md_stability_{label}_"))
            export_file = workdir / f"{label}.mliap"
            export(name, export_file, dtype="float32")
        for index, (molecule, smiles) in enumerate(unseen.UNSEEN_MOLECULES.items()):
            for temperature in args.temperatures:
                atoms = conformer_to_atoms(embed_conformers(smiles, 1, 0), 0)
                start = time.perf_counter()
                if args.lammps:
                    failed_at, stretch, approach = run_lammps(
                        export_file,
                        model.elements,
                        atoms,
                        temperature,
                        steps,
                        1000 * index + int(temperature) + 100_000 * args.trajectory,
                        workdir,
                    )
                else:
                    failed_at, stretch, approach = run(
                        model,
                        atoms,
                        temperature,
                        steps,
                        [index, int(temperature)] + [args.trajectory] * (args.trajectory > 0),
                    )
                verdict = "held" if failed_at is None else f"FAILED at {failed_at * 0.5 / 1000:.2f} ps"
                print(
                    f"{label:12s} {molecule:22s} {temperature:6.0f} K  {verdict:20s} largest bond stretch "
                    f"{stretch:.2f}, closest non-bonded {approach:.2f} x radii ({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )
                results.append(
                    {
                        "model": label,
                        "molecule": molecule,
                        "temperature_K": temperature,
                        "ps": args.ps,
                        "engine": "lammps" if args.lammps else "ase",
                        "trajectory": args.trajectory,
                        "failed_at_step": failed_at,
                        "largest_bond_stretch": stretch,
                        "closest_nonbonded_over_radii": approach,
                    }
                )
    atomic_write_text(HERE / args.out, json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
