"""The LAMMPS plugin pair style `mliap/halo` (lammps_plugin/) in real LAMMPS under real mpirun:
exact against the Python model on 1-4 ranks, in periodic (orthorhombic and triclinic) and
non-periodic boxes and with ranks left without atoms; MD across rank counts; NULL types under pair
hybrid; linear memory; the contract with its Python side; inputs it refuses."""

import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlff_distiller.lammps.export import export, input_lines
from mlff_distiller.lammps.halo_data import BIND_FORMAT, HaloData, connect, protocol_signature
from mlff_distiller.model.replay import COMPILE_MESSAGE

from plugin_support import (
    LMP,
    PLUGIN,
    ROOT,
    WATER,
    lammps_input,
    make_export,
    molecule_in_vacuum,
    ortho_water,
    pair_lines,
    reference,
    relative_errors,
    run_lammps,
    run_single_point,
    triclinic_water,
    water_slab,
    write_data_with_bonds,
)

pytestmark = pytest.mark.lammps

REL = 1e-9  # float64 throughout: agreement to round-off

SYSTEMS = {
    # name: (atoms, elements, boundary, n_layers, processors keyword for 4 ranks)
    "orthorhombic": (ortho_water, WATER, "p p p", 2, ""),
    "triclinic": (triclinic_water, WATER, "p p p", 2, ""),
    "molecule": (molecule_in_vacuum, ["H", "C", "N", "O"], "f f f", 3, ""),
    "slab_empty_rank": (water_slab, WATER, "p p p", 2, "processors 4 1 1"),
}


@pytest.fixture(autouse=True)
def plugin_built():
    if not PLUGIN.exists():
        pytest.fail(f"{PLUGIN} is missing: run `bash scripts/setup.sh` first")


@pytest.mark.parametrize("system", list(SYSTEMS))
def test_plugin_matches_python_on_1_to_4_ranks(tmp_path, system):
    make_atoms, elements, boundary, n_layers, processors = SYSTEMS[system]
    atoms = make_atoms()
    model_file, model = make_export(tmp_path, n_layers, elements=elements)
    ref = reference(model, atoms)
    for nprocs in (1, 2, 3, 4):
        script = lammps_input(pair_lines(model_file, elements), boundary, processors if nprocs == 4 else "")
        result = run_single_point(tmp_path / f"plugin{nprocs}", atoms, script, nprocs, elements)
        errors = relative_errors(result, ref)
        assert max(errors.values()) < REL, (nprocs, errors)
    if system == "slab_empty_rank":  # the decomposition did leave a rank without atoms
        log = (tmp_path / "plugin4" / "log.lammps").read_text()
        assert re.search(r"Nlocal:\s+\S+ ave\s+\S+ max\s+0 min", log), "no empty rank"


def test_repulsion_through_the_plugin_on_1_and_2_ranks(tmp_path):
    """Compressed water (every length x 0.8): O-H bonds inside the repulsion, pairs across ranks."""
    atoms = triclinic_water()
    atoms.set_cell(atoms.cell * 0.8, scale_atoms=True)
    model_file, model = make_export(tmp_path, 2, elements=WATER, repulsion=True)
    ref = reference(model, atoms)
    for nprocs in (1, 2):
        result = run_single_point(
            tmp_path / f"plugin{nprocs}", atoms, lammps_input(pair_lines(model_file, WATER), "p p p", ""), nprocs, WATER
        )
        errors = relative_errors(result, ref)
        assert max(errors.values()) < REL, (nprocs, errors)


def test_three_layers_float32_autograd_and_many_images(tmp_path):
    """A 3-layer model (two exchanges each way) on a box smaller than the ghost shell (atoms have
    several images on one rank): float64 exact, float32 within float32 round-off, and the
    autograd export (exchange differentiated by autograd) exact too."""
    atoms = triclinic_water()
    for dtype, method, rel, ranks in (
        ("float64", "analytic", REL, (1, 3)),
        ("float32", "analytic", 2e-4, (1, 3)),
        ("float64", "autograd", REL, (2,)),
    ):
        model_file, model = make_export(tmp_path, 3, dtype=dtype, method=method)
        ref = reference(model, atoms)
        for nprocs in ranks:
            result = run_single_point(
                tmp_path / f"{dtype}_{method}_{nprocs}", atoms, lammps_input(pair_lines(model_file, WATER)), nprocs
            )
            errors = relative_errors(result, ref)
            assert max(errors.values()) < rel, (dtype, method, nprocs, errors)


@pytest.mark.parametrize("method", ["analytic", "autograd"])
def test_compiled_step_on_several_ranks(tmp_path, method):
    """The step users get by default (MLFF_COMPILE unset: the compiled model, whose host halo
    exchanges run through the opaque operator of model/halo.py) on 2 ranks, exact in float64."""
    atoms = triclinic_water()
    model_file, model = make_export(tmp_path, 3, method=method)
    ref = reference(model, atoms)
    result = run_single_point(
        tmp_path / "compiled", atoms, lammps_input(pair_lines(model_file, WATER)), 2, env={"MLFF_COMPILE": "1"}
    )
    assert result["output"].count(COMPILE_MESSAGE) == 2  # each rank compiled its model
    errors = relative_errors(result, ref)
    assert max(errors.values()) < REL, errors


def test_null_type_under_pair_hybrid(tmp_path):
    """Atoms of a type mapped to NULL take no part (pair hybrid/overlay with zero for them)."""
    atoms = ortho_water()
    model_file, model = make_export(tmp_path, 2)
    argon = atoms.copy()
    argon.set_chemical_symbols(["Ar" if k % 7 == 3 else s for k, s in enumerate(atoms.get_chemical_symbols())])
    ref = reference(model, argon[[s != "Ar" for s in argon.get_chemical_symbols()]])
    keep = np.array([s != "Ar" for s in argon.get_chemical_symbols()])
    pair = (
        f"plugin load {PLUGIN}\npair_style hybrid/overlay mliap/halo {model_file} zero 4.0\n"
        "pair_coeff * * mliap/halo H O NULL\npair_coeff * * zero"
    )
    for nprocs in (1, 2):
        result = run_single_point(
            tmp_path / f"null{nprocs}", argon, lammps_input(pair), nprocs, elements=["H", "O", "Ar"]
        )
        assert np.abs(result["forces"][~keep]).max() == 0 and np.abs(result["pe_atom"][~keep]).max() == 0
        for key in ("pe_atom", "forces", "stress_atom"):
            result[key] = result[key][keep]
        errors = relative_errors(result, ref)
        assert max(errors.values()) < REL, (nprocs, errors)


def test_nve_on_2_ranks_matches_1_rank(tmp_path):
    """300 steps of NVE: the trajectories on 1 and 2 ranks agree within 1e-6 A.

    The ranks sum forces in different orders, so trajectories differ by round-off that the
    dynamics amplifies: with this random-weight model at 50 K the gap grows ~50x per 100 steps
    (8e-14 A at step 100, 3e-12 at 200, 2e-10 at 300, 2e-5 at 500)."""
    atoms = triclinic_water()
    model_file, _ = make_export(tmp_path, 2)
    md = """
velocity all create 50 4928459 mom yes rot yes dist gaussian
timestep 0.0005
fix nve all nve
thermo 100
thermo_style custom step pe ke etotal
thermo_modify format float %.15g
"""
    positions, etot = [], []
    for nprocs in (1, 2):
        result = run_single_point(
            tmp_path / f"nve{nprocs}",
            atoms,
            lammps_input(pair_lines(model_file, WATER), extra=md, run="run 300", skin=1.0),
            nprocs,
        )
        positions.append(result["positions"])
        log = (tmp_path / f"nve{nprocs}" / "log.lammps").read_text()
        etot.append(
            [
                float(line.split()[3])
                for line in log.splitlines()
                if re.match(r"\s+\d+\s+-?\d", line) and len(line.split()) == 4
            ]
        )
    assert len(etot[0]) == 4
    assert np.abs(positions[0] - positions[1]).max() < 1e-6
    assert np.abs(np.array(etot[0]) - etot[1]).max() < 1e-9 * abs(etot[0][0])
    assert np.abs(np.array(etot[0]) - etot[0][0]).max() < 1e-3 * len(atoms)  # and energy is kept


def test_memory_grows_linearly(tmp_path):
    """LAMMPS's per-rank memory figure (neighbour lists, atoms, the pair style's arrays) grows
    in proportion to the atoms: 4x the atoms, at most ~4x the memory (stock ML-IAP: ~16x)."""
    from mlff_distiller.structures import random_water_box

    model_file, _ = make_export(tmp_path, 2)
    memory = {}
    for n_molecules in (125, 500):
        atoms = random_water_box(n_molecules, 1.0, 0)
        atoms.wrap()
        work = tmp_path / f"mem{n_molecules}"
        run_single_point(work, atoms, lammps_input(pair_lines(model_file, WATER), skin=2.0))
        log = (work / "log.lammps").read_text()
        memory[len(atoms)] = float(re.search(r"Per MPI rank memory allocation \(min/avg/max\) = \S+ \| (\S+)", log)[1])
    (n1, m1), (n2, m2) = sorted(memory.items())
    assert m2 / m1 < 1.3 * n2 / n1, memory


def test_export_prints_working_plugin_lines(tmp_path):
    """Block (a) of `mlff-distiller lammps-input` runs as printed."""
    model_file, model = make_export(tmp_path, 2)
    text = input_lines(model_file)
    block = text.split("# (a)")[1].split("# (b)")[0]
    assert "any number of MPI ranks" in block and f"plugin load {PLUGIN}" in block
    lines = "\n".join(line for line in block.splitlines()[1:] if line and not line.startswith("#"))
    atoms = ortho_water()
    result = run_single_point(tmp_path / "lines", atoms, lammps_input(lines))
    assert abs(result["energy"] - reference(model, atoms)["energy"]) < REL * abs(result["energy"])


def test_python_side_states_the_bind_layout_it_implements():
    """BIND_FORMAT (compared with the plugin's at pair_style) lists HaloData._bind's parameters."""
    assert list(BIND_FORMAT) == list(inspect.signature(HaloData._bind).parameters)[1:]


def test_a_plugin_of_another_protocol_is_refused(tmp_path):
    model_file, _ = make_export(tmp_path, 2)
    other = protocol_signature().replace("bind(iii", "bind(iiii")
    with pytest.raises(RuntimeError, match="rebuild the plugin"):
        connect(str(model_file), 0, 0, other, 4)


def overlapping_water():
    """ortho_water with an H moved onto its oxygen's neighbour 0.05 A away."""
    atoms = ortho_water()
    atoms.positions[1] = atoms.positions[0] + [0.05, 0, 0]
    return atoms


# runs the command with MLFF_DEVICE=cuda:7 on MPI rank 1 only (Open MPI or MPICH)
ON_RANK_1_A_GPU_THAT_IS_NOT_THERE = (
    "sh",
    "-c",
    'if [ "${OMPI_COMM_WORLD_RANK:-$PMI_RANK}" = 1 ]; then export MLFF_DEVICE=cuda:7; fi; exec "$@"',
    "sh",
)


@pytest.mark.parametrize(
    "problem", ["newton", "element", "missing", "model_file", "units", "bonds", "overlap_2_ranks", "device_on_one_rank"]
)
def test_errors_stop_lammps_with_a_message(tmp_path, problem):
    """Each stops LAMMPS with its message; where one rank fails and the others do not, every rank
    still stops (no hang: the run's timeout would fail the test)."""
    model_file, _ = make_export(tmp_path, 2)
    atoms, nprocs, write, launcher = ortho_water(), 1, None, ()
    script = lammps_input(pair_lines(model_file, WATER))
    if problem == "newton":
        script, expect = script.replace("newton on", "newton off"), "requires newton pair on"
    elif problem == "element":
        script = lammps_input(pair_lines(model_file, ["H", "Si"]))
        expect = "element Si (atom type 2) is not one of the elements of model"
    elif problem == "missing":
        script = lammps_input(pair_lines(tmp_path / "nothing.mliap", WATER))
        expect = f"cannot read {tmp_path / 'nothing.mliap'}: No such file"
    elif problem == "model_file":
        script = lammps_input(pair_lines(tmp_path / "model2_16_float64_analytic_cpu.pt", WATER))
        expect = "is a model file (torch), not a LAMMPS export: run `mlff-distiller export"
    elif problem == "units":
        script, expect = lammps_input(pair_lines(model_file, WATER), units="real"), "use `units metal`"
    elif problem == "bonds":
        pair = "bond_style zero\nbond_coeff *\n" + pair_lines(model_file, WATER)
        script = lammps_input(pair, atom_style="full")
        expect, write = "add `special_bonds lj/coul 1.0 1.0 1.0`", write_data_with_bonds
    elif problem == "device_on_one_rank":  # loading fails on rank 1 only (no such GPU there)
        nprocs, launcher = 2, ON_RANK_1_A_GPU_THAT_IS_NOT_THERE
        expect = "the model asks for"  # rank 1's own message (it stops the run before rank 0's)
    else:  # the shipped model on overlapping atoms, one rank fails: every rank stops
        model_file = export("default", tmp_path / "default.mliap")
        atoms, nprocs = overlapping_water(), 2
        script = lammps_input(pair_lines(model_file, WATER), processors="processors 2 1 1")
        expect = "the model gave absurd energies or forces"
    work = tmp_path / "err"
    work.mkdir()
    if write:
        write(work / "structure.data", atoms, WATER)
    else:
        atoms.write(work / "structure.data", format="lammps-data", specorder=WATER, masses=True)
    proc = run_lammps(script, work, nprocs=nprocs, check=False, timeout=120, launcher=launcher)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "ERROR" in output
    assert expect in output, output[-3000:]


def cmake_cache(build: Path) -> dict[str, str]:
    entries = re.findall(r"^([A-Za-z_]+):[A-Z]+=(.*)$", (build / "CMakeCache.txt").read_text(), re.M)
    return dict(entries)


def test_plugin_builds_against_an_installed_lammps(tmp_path):
    """The standalone build of lammps_plugin/CMakeLists.txt through find_package(LAMMPS): the
    set-up's LAMMPS installed into a folder, the plugin built against it (headers LAMMPS does not
    install taken from its sources) and loaded by lmp; without those headers, a message says so."""
    build = Path(os.environ.get("MLFF_BUILD", ROOT / "build" / "lammps"))
    cache = cmake_cache(build)
    subprocess.run(
        ["cmake", "--install", str(build), "--prefix", str(tmp_path / "lammps")], check=True, capture_output=True
    )
    configure = [
        "cmake",
        "-S",
        str(ROOT / "lammps_plugin"),
        "-B",
        str(tmp_path / "plugin"),
        f"-DLAMMPS_DIR={tmp_path / 'lammps' / 'lib' / 'cmake' / 'LAMMPS'}",
        f"-DMPI_CXX_COMPILER={cache['MPI_CXX_COMPILER']}",
        f"-DPython_EXECUTABLE={sys.executable}",
    ]
    if not (tmp_path / "lammps" / "include" / "lammps" / "lammpsplugin.h").exists():  # as 4Feb2025 installs
        refused = subprocess.run(configure, capture_output=True, text=True)
        assert refused.returncode != 0 and "has no lammpsplugin.h" in refused.stdout + refused.stderr
        shutil.rmtree(tmp_path / "plugin")
    headers = f"-DLAMMPS_HEADER_DIR={Path(cache['LAMMPS_SOURCE_DIR']) / 'src'}"
    configured = subprocess.run(configure + [headers], capture_output=True, text=True)
    assert configured.returncode == 0 and "building against the LAMMPS of" in configured.stdout, configured.stderr
    subprocess.run(["cmake", "--build", str(tmp_path / "plugin"), "-j", "2"], check=True, capture_output=True)
    listed = subprocess.run(
        [str(LMP), "-nocite", "-log", "none"],
        input=f"plugin load {tmp_path / 'plugin' / 'mlffplugin.so'}\nplugin list\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    for style in ("mliap/halo", "mliap/aoti"):
        assert f"pair style plugin {style}" in listed.stdout, listed.stdout + listed.stderr
