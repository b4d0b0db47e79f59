"""The LAMMPS that scripts/setup.sh builds: packages, ML-IAP Python coupling, MPI exactness."""

import pickle
import subprocess

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

from lammps_runner import HERE, read_dump, read_values, run_lammps
from pairwise_model import MorseUnified, morse_pair


def test_lmp_reports_mliap_python_plugin(lmp):
    help_text = subprocess.run([str(lmp), "-h"], capture_output=True, text=True, check=True).stdout
    for package in ("ML-IAP", "ML-SNAP", "PYTHON", "PLUGIN", "MOLECULE", "EXTRA-FIX"):
        assert package in help_text.split(), package


def test_python_module_activates_mliappy():
    import lammps
    import lammps.mliap

    lmp = lammps.lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    try:
        assert lmp.has_package("ML-IAP") and lmp.has_package("PYTHON")
        lammps.mliap.activate_mliappy(lmp)
    finally:
        lmp.close()


def test_embedded_python_is_the_venv(lmp, tmp_path):
    """lmp finds the venv's packages even with a bare environment (no activated venv)."""
    (tmp_path / "check.py").write_text("import sys, torch, mlff_distiller\nprint('PREFIX', sys.prefix)\n")
    (tmp_path / "in.lmp").write_text("python source check.py\n")
    proc = subprocess.run(
        [str(lmp), "-in", "in.lmp", "-log", "none"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"PREFIX {lmp.parent.parent}" in proc.stdout


def random_box(seed=3, n=60, length=9.0, min_dist=1.1):
    rng = np.random.default_rng(seed)
    positions = []
    while len(positions) < n:
        p = rng.uniform(0, length, 3)
        atoms = Atoms("X" * (len(positions) + 1), positions=positions + [p], cell=[length] * 3, pbc=True)
        if len(positions) == 0 or atoms.get_distances(-1, range(len(positions)), mic=True).min() > min_dist:
            positions.append(p)
    symbols = ["H" if k % 3 else "O" for k in range(n)]
    return Atoms(symbols, positions=positions, cell=[length] * 3, pbc=True)


def morse_numpy(atoms, cutoff):
    i, j, d = neighbor_list("ijD", atoms, cutoff)
    r = np.linalg.norm(d, axis=1)
    e, de = morse_pair(r, cutoff)
    forces = np.zeros((len(atoms), 3))
    g = (0.5 * de / r)[:, None] * d  # dE/dr_ij for r_ij = x_j - x_i
    np.add.at(forces, i, g)
    np.add.at(forces, j, -g)
    return 0.5 * e.sum(), forces


def morse_input(model_file):
    return f"""
units metal
atom_style atomic
boundary p p p
newton on
read_data box.data
mass 1 1.008
mass 2 15.999
pair_style mliap unified {model_file} 0
pair_coeff * * H O
compute pe_atom all pe/atom
dump d all custom 1 forces.dump id type fx fy fz c_pe_atom
dump_modify d format float %.17g
run 0
variable e equal pe
print "energy $(v_e:%.17g)" file energy.txt
"""


def test_pairwise_model_matches_numpy_on_1_and_2_ranks(lmp, tmp_path):
    atoms = random_box()
    cutoff = 4.0
    with open(tmp_path / "morse.pkl", "wb") as fh:
        pickle.dump(MorseUnified(("H", "O"), cutoff), fh)
    energy_ref, forces_ref = morse_numpy(atoms, cutoff)
    results = []
    for nprocs in (1, 2):
        work = tmp_path / f"np{nprocs}"
        work.mkdir()
        atoms.write(work / "box.data", format="lammps-data", specorder=["H", "O"], masses=False)
        run_lammps(morse_input(tmp_path / "morse.pkl"), work, nprocs, env={"PYTHONPATH": str(HERE)})
        dump = read_dump(work / "forces.dump")
        forces = np.stack([dump["fx"], dump["fy"], dump["fz"]], axis=1)
        energy = read_values(work / "energy.txt")["energy"]
        assert abs(energy - energy_ref) < 1e-10 * abs(energy_ref)
        assert np.abs(forces - forces_ref).max() < 1e-10
        assert abs(dump["c_pe_atom"].sum() - energy_ref) < 1e-10 * abs(energy_ref)
        results.append((energy, forces))
    assert abs(results[0][0] - results[1][0]) < 1e-12 * abs(results[0][0])
    assert np.abs(results[0][1] - results[1][1]).max() < 1e-12
