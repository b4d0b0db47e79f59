"""The plugin pair style `mliap/aoti` (lammps_plugin/pair_mliap_aoti.cpp) in real LAMMPS: the
force step compiled ahead of time (lammps/aoti.py) and run from C++ gives the Python model's
energies, forces, pressure and per-atom virial to round-off, in periodic (orthorhombic and
triclinic, atoms with several images) and non-periodic boxes, inside the repulsion, with NULL
types; an MD run with neighbour-list rebuilds follows `mliap/halo`'s; the C++ and Python sides of
the package contract agree; wrong packages and settings stop LAMMPS with a message."""

import inspect
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mlff_distiller.lammps import aoti
from mlff_distiller.lammps.export import input_lines, package_path
from mlff_distiller.lammps.inputs import plugin_path
from mlff_distiller.model import fused

from plugin_support import (
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
)

pytestmark = [pytest.mark.lammps, pytest.mark.slow]

REL = 1e-9  # float64: round-off
ELEMENTS = ["H", "C", "N", "O"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """A 3-layer model with the repulsion: its export and float64 compiled step (export, model)."""
    model_file, model = make_export(
        tmp_path_factory.mktemp("aoti"), 3, elements=ELEMENTS, repulsion=True, format="aoti"
    )
    return model_file, model


def aoti_lines(model_file, elements=WATER) -> str:
    return pair_lines(package_path(model_file), elements, style="mliap/aoti")


def compressed_water():
    atoms = triclinic_water()
    atoms.set_cell(atoms.cell * 0.8, scale_atoms=True)  # O-H bonds inside the repulsion
    return atoms


SYSTEMS = {
    # name: (atoms, elements, boundary)
    "orthorhombic": (ortho_water, WATER, "p p p"),
    "triclinic_many_images": (triclinic_water, WATER, "p p p"),
    "molecule": (molecule_in_vacuum, ELEMENTS, "f f f"),
    "compressed_repulsion": (compressed_water, WATER, "p p p"),
}


@pytest.mark.parametrize("system", list(SYSTEMS))
def test_compiled_step_matches_python_model_on_1_to_4_ranks(tmp_path, compiled, system):
    make_atoms, elements, boundary = SYSTEMS[system]
    model_file, model = compiled
    atoms = make_atoms()
    ref = reference(model, atoms)
    for nprocs in (1, 2, 3, 4):
        script = lammps_input(aoti_lines(model_file, elements), boundary)
        result = run_single_point(tmp_path / f"ranks{nprocs}", atoms, script, nprocs, elements)
        assert "mliap/aoti:" in result["output"] and "on cpu" in result["output"]
        errors = relative_errors(result, ref)
        assert max(errors.values()) < REL, (nprocs, errors)


def test_a_rank_without_atoms(tmp_path, compiled):
    """`processors 4 1 1` on a slab: one rank owns no atom and still joins every exchange."""
    model_file, model = compiled
    atoms = water_slab()
    result = run_single_point(tmp_path, atoms, lammps_input(aoti_lines(model_file), processors="processors 4 1 1"), 4)
    log = (tmp_path / "log.lammps").read_text()
    assert re.search(r"Nlocal:\s+\S+ ave\s+\S+ max\s+0 min", log), "no empty rank"
    errors = relative_errors(result, reference(model, atoms))
    assert max(errors.values()) < REL, errors


def test_null_type_under_pair_hybrid(tmp_path, compiled):
    """Atoms of a type mapped to NULL take no part: no force, no energy, and the others as
    without them."""
    model_file, model = compiled
    argon = ortho_water()
    argon.set_chemical_symbols(["Ar" if k % 7 == 3 else s for k, s in enumerate(argon.get_chemical_symbols())])
    keep = np.array([s != "Ar" for s in argon.get_chemical_symbols()])
    pair = (
        f"{aoti_lines(model_file).splitlines()[0]}\n"
        f"pair_style hybrid/overlay mliap/aoti {package_path(model_file)} zero 4.0\n"
        "pair_coeff * * mliap/aoti H O NULL\npair_coeff * * zero"
    )
    result = run_single_point(tmp_path, argon, lammps_input(pair), 1, elements=["H", "O", "Ar"])
    assert np.abs(result["forces"][~keep]).max() == 0 and np.abs(result["pe_atom"][~keep]).max() == 0
    for key in ("pe_atom", "forces", "stress_atom"):
        result[key] = result[key][keep]
    errors = relative_errors(result, reference(model, argon[keep]))
    assert max(errors.values()) < REL, errors


def test_md_with_neighbour_rebuilds_follows_the_python_step(tmp_path, compiled):
    """300 steps of NVE with a thin skin, the list rebuilt whenever an atom moved: the compiled
    step on 1 and 2 ranks and `mliap/halo` (the Python model, uncompiled) give the same
    trajectory."""
    model_file, _ = compiled
    md = """
velocity all create 300 4928459 mom yes rot yes dist gaussian
timestep 0.0005
neigh_modify every 1 delay 0 check yes
fix nve all nve
thermo 50
thermo_style custom step pe ke etotal
thermo_modify format float %.15g
"""
    runs = {}
    for name, lines, nprocs in (
        ("aoti", aoti_lines(model_file), 1),
        ("aoti_2_ranks", aoti_lines(model_file), 2),
        ("halo", pair_lines(model_file, WATER), 1),
    ):
        atoms = triclinic_water()
        runs[name] = run_single_point(
            tmp_path / name, atoms, lammps_input(lines, extra=md, run="run 300", skin=0.1), nprocs
        )
        log = (tmp_path / name / "log.lammps").read_text()
        builds = int(re.search(r"Neighbor list builds = (\d+)", log).group(1))
        assert builds >= 5, (name, builds)
    # the paths sum in different orders, and MD amplifies that round-off (in this box 1e-8 A and
    # 1.3e-9 of the energy after 300 steps; bounds 10x above); a pair lost or kept at a rebuild moves
    # atoms by orders of magnitude more
    for name in ("aoti", "aoti_2_ranks"):
        assert np.abs(runs[name]["positions"] - runs["halo"]["positions"]).max() < 1e-7, name
        assert abs(runs[name]["energy"] - runs["halo"]["energy"]) < 1e-8 * abs(runs["halo"]["energy"]), name


def test_float32_step(tmp_path):
    """A float32 model: pair vectors from float64 positions, sums in float64, the model's own
    round-off only."""
    model_file, model = make_export(tmp_path, 2, dtype="float32", format="aoti")
    atoms = triclinic_water()
    result = run_single_point(tmp_path / "run", atoms, lammps_input(aoti_lines(model_file)), 1)
    errors = relative_errors(result, reference(model, atoms))
    assert max(errors.values()) < 2e-4, errors


def test_printed_input_lines_run(tmp_path, compiled):
    """Block (0) of `mlff-distiller lammps-input` runs as printed when the .pt2 is there."""
    model_file, model = compiled
    block = input_lines(model_file, WATER).split("# (0)")[1].split("# (a)")[0]
    lines = "\n".join(line for line in block.splitlines()[1:] if line and not line.startswith("#"))
    assert "pair_style mliap/aoti" in lines
    atoms = ortho_water()
    result = run_single_point(tmp_path, atoms, lammps_input(lines))
    assert abs(result["energy"] - reference(model, atoms)["energy"]) < REL * abs(result["energy"])


def protocol_header() -> str:
    return (ROOT / "lammps_plugin" / "aoti_protocol.h").read_text()


def header_string(name: str) -> str:
    return re.search(rf'{name} = "([^"]*)"', protocol_header()).group(1)


def test_both_sides_state_the_same_package_contract():
    assert header_string("FORMAT") == aoti.AOTI_FORMAT
    assert header_string("FORMAT_VERSION") == str(aoti.AOTI_VERSION)
    assert header_string("INPUTS") == ",".join(aoti.PACKAGE_INPUTS)
    assert header_string("OUTPUTS") == ",".join(aoti.PACKAGE_OUTPUTS)
    enum = re.search(r"enum Output \{([^}]*)\}", protocol_header()).group(1)
    names = [item.split("=")[0].strip().lower() for item in enum.split(",")][: len(aoti.PACKAGE_OUTPUTS)]
    assert names == list(aoti.PACKAGE_OUTPUTS)
    assert list(inspect.signature(aoti.ForceStep.forward).parameters)[1:] == list(aoti.PACKAGE_INPUTS)
    assert [header_string("ONE_RANK_MODEL"), header_string("RANKS_MODEL")] == list(aoti.PACKAGE_MODELS.values())
    assert header_string("FUSED_KERNELS_KEY") == aoti.FUSED_KERNELS_KEY
    plugin_folder = Path(sys.prefix) / "lib" / "lammps-plugins"
    assert (plugin_folder / header_string("FUSED_LIBRARY")).resolve() == fused.library_path().resolve()


def metadata_of(package: Path) -> dict:
    """The metadata of a package's first model."""
    with zipfile.ZipFile(package) as files:
        return json.loads(files.read(next(n for n in files.namelist() if n.endswith("_metadata.json"))))


def with_metadata(package: Path, output: Path, **changes) -> Path:
    """A copy of a package whose metadata (the JSON files the loader reads) has ``changes``."""
    with zipfile.ZipFile(package) as source, zipfile.ZipFile(output, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.endswith("_metadata.json"):
                data = json.dumps({**json.loads(data), **changes}).encode()
            target.writestr(item, data)
    return output


@pytest.mark.parametrize(
    "problem", ["mliap_file", "missing", "torch_version", "format", "element", "units", "fused_library"]
)
def test_errors_stop_lammps_with_a_message(tmp_path, compiled, problem):
    model_file, _ = compiled
    package = package_path(model_file)
    lines = aoti_lines(model_file)
    if problem == "mliap_file":
        lines = pair_lines(model_file, WATER, style="mliap/aoti")
        expect = "is not an AOTInductor package"
    elif problem == "missing":
        lines = pair_lines(tmp_path / "nothing.pt2", WATER, style="mliap/aoti")
        expect = "cannot read"
    elif problem == "torch_version":
        other = with_metadata(package, tmp_path / "other.pt2", torch_version="1.0.0")
        lines, expect = pair_lines(other, WATER, style="mliap/aoti"), "was compiled by torch 1.0.0 but this plugin runs"
    elif problem == "format":
        other = with_metadata(package, tmp_path / "other.pt2", mlff_format_version="0")
        lines, expect = pair_lines(other, WATER, style="mliap/aoti"), "re-export it with"
    elif problem == "element":
        lines, expect = aoti_lines(model_file, ["H", "Si"]), "element Si (atom type 2) is not one of the elements"
    elif problem == "fused_library":  # a plugin copied away from the environment's fused kernels
        if fused.UNAVAILABLE["cpu"]:
            pytest.skip(f"fused kernels: {fused.UNAVAILABLE['cpu']}")
        assert metadata_of(package)[aoti.FUSED_KERNELS_KEY] == "1"
        alone = tmp_path / "elsewhere" / "mlffplugin.so"
        alone.parent.mkdir()
        shutil.copy(plugin_path(), alone)
        lines = aoti_lines(model_file).replace(str(plugin_path()), str(alone))
        expect = "calls the fused kernels of mlff-distiller, but"
    else:
        expect = "use `units metal`"
    work = tmp_path / "err"
    work.mkdir()
    ortho_water().write(work / "structure.data", format="lammps-data", specorder=WATER, masses=True)
    script = lammps_input(lines, units="real" if problem == "units" else "metal")
    proc = run_lammps(script, work, nprocs=2, check=False, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "ERROR" in output
    assert expect in output, output[-3000:]


def test_export_refuses_what_it_cannot_compile(tmp_path):
    model_bytes = b""  # each is refused before the model is read
    with pytest.raises(ValueError, match="analytic only"):
        aoti.compile_package(model_bytes, tmp_path / "m.pt2", "autograd", "float64", "cpu")
    with pytest.raises(ValueError, match=r"must be named \*\.pt2"):
        aoti.compile_package(model_bytes, tmp_path / "m.so", "analytic", "float64", "cpu")
    with pytest.raises(ValueError, match="one CPU thread or more"):
        aoti.compile_package(model_bytes, tmp_path / "m.pt2", "analytic", "float64", "cpu", threads=0)
    assert not list(tmp_path.glob("*.pt2"))


def test_step_profile_splits_the_step_from_lammps_alone(tmp_path, compiled):
    """`benchmarks/run.py step-profile` on an MD input through mliap/aoti: the step, the same box
    with `pair_style zero` at the package's cutoff (LAMMPS alone), and the profiled step's
    operations, the fused kernels among them where they are built."""
    model_file, _ = compiled
    ortho_water().write(tmp_path / "structure.data", format="lammps-data", specorder=WATER, masses=True)
    script = tmp_path / "in.md"
    script.write_text(
        "units metal\natom_style atomic\nboundary p p p\nnewton on\nread_data structure.data\n"
        f"{aoti_lines(model_file)}\nvelocity all create 300.0 1 mom yes\nfix nve all nve\nrun 10\n"
    )
    out = tmp_path / "profile.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "step-profile", str(script), "--steps", "6"]
    proc = subprocess.run([*command, "--warmup", "2", "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    step, alone, profile = json.loads(out.read_text())
    assert (step["kind"], alone["kind"], profile["kind"]) == ("step", "lammps_alone", "profile")
    assert step["atoms"] == alone["atoms"] == len(ortho_water())
    assert (step["dtype"], step["method"]) == ("float64", "analytic")
    assert alone["sections_ms_per_step"]["Pair"] < 0.1 * step["sections_ms_per_step"]["Pair"]
    assert alone["ms_per_step"] < step["ms_per_step"]
    names = [op["name"] for op in profile["operations"]]
    assert len(names) > 5 and all(op["calls_per_step"] > 0 for op in profile["operations"])
    if fused.serves("cpu"):
        assert "mlff_fused::message_backward" in names
    assert (tmp_path / "profile.txt").read_text().count("Self CPU") >= 1
