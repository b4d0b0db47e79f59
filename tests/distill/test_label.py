"""Teacher labelling: labels equal the teacher's own numbers, runs resume, and bad input fails clearly.

These tests run the real GFN2-xTB teacher (tblite) on molecules of a few atoms, which takes
milliseconds per structure.
"""

import argparse

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT

from mlff_distiller import cli
from mlff_distiller.distill import label as label_module
from mlff_distiller.distill.label import label_structures, read_done_ids, structure_id
from mlff_distiller.distill.sampling import sample_molecule, sample_water_boxes
from mlff_distiller.distill.teacher import make_teacher

# Short MD so that sampling in tests takes a fraction of a second.
QUICK_MD = dict(equilibration_steps=20, snapshot_interval=10)


def rattled_waters(n: int, seed: int = 0) -> list[Atoms]:
    rng = np.random.default_rng(seed)
    structures = []
    for _ in range(n):
        atoms = molecule("H2O")
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        structures.append(atoms)
    return structures


def direct_xtb(atoms: Atoms, stress: bool = False):
    """Energy, forces (and stress) from a fresh GFN2-xTB calculator, bypassing the labeller."""
    atoms = atoms.copy()
    atoms.calc = make_teacher("gfn2-xtb")
    results = [atoms.get_potential_energy(), atoms.get_forces()]
    if stress:
        results.append(atoms.get_stress())
    return results


def assert_labels_match_direct(path, structures, stress=False):
    labelled = ase.io.read(path, ":")
    assert len(labelled) == len(structures)
    for atoms, original in zip(labelled, structures):
        assert atoms.info["label_id"] == structure_id(original)
        np.testing.assert_allclose(atoms.positions, original.positions, atol=1e-7)
        expected = direct_xtb(original, stress)
        assert atoms.get_potential_energy() == pytest.approx(expected[0], abs=1e-5)
        np.testing.assert_allclose(atoms.get_forces(), expected[1], atol=1e-5)
        if stress:
            np.testing.assert_allclose(atoms.get_stress(), expected[2], atol=1e-6)


class RecordingTeacher(Calculator):
    """GFN2-xTB that remembers the id of every structure it computes."""

    implemented_properties = ["energy", "forces"]

    def __init__(self):
        super().__init__()
        self.computed = []
        self.xtb = make_teacher("gfn2-xtb")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.computed.append(structure_id(self.atoms))
        copy = self.atoms.copy()
        copy.calc = self.xtb
        self.results = {"energy": copy.get_potential_energy(), "forces": copy.get_forces()}


class FailsOnNitrogen(EMT):
    """EMT, except that it raises on anything with nitrogen, like a teacher that crashes."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        if 7 in atoms.numbers:
            raise RuntimeError("SCF exploded")
        super().calculate(atoms, properties, system_changes)


# ----------------------------------------------------------------------------- labels are right


def test_water_molecule_labels_equal_direct_xtb(tmp_path):
    structures = rattled_waters(2)
    path = tmp_path / "water.extxyz"
    report = label_structures(structures, "gfn2-xtb", path, progress=False)
    assert (report.labelled, report.already_done, report.failed) == (2, 0, 0)
    assert_labels_match_direct(path, structures)
    assert ase.io.read(path, 0).info["teacher"] == "gfn2-xtb"


def test_smiles_snapshots_labels_equal_direct_xtb(tmp_path):
    structures = sample_molecule(
        "CO", name="methanol", n_conformers=1, temperatures=[600], snapshots_per_run=3, **QUICK_MD
    )
    assert len(structures) == 3
    assert len({structure_id(atoms) for atoms in structures}) == 3  # the MD moved the atoms
    path = tmp_path / "methanol.extxyz"
    label_structures(structures, "gfn2-xtb", path, progress=False)
    assert_labels_match_direct(path, structures)
    assert ase.io.read(path, -1).info["molecule"] == "methanol"


def test_periodic_water_box_gets_stress(tmp_path):
    structures = sample_water_boxes(1, n_molecules=8, temperatures=[300], **QUICK_MD)
    box = structures[0]
    assert len(box) == 24 and box.pbc.all()
    path = tmp_path / "box.extxyz"
    label_structures(structures, "gfn2-xtb", path, progress=False)
    assert_labels_match_direct(path, structures, stress=True)


def test_sampling_is_deterministic():
    first = sample_molecule("CCO", n_conformers=2, temperatures=[300, 900], snapshots_per_run=2, seed=3, **QUICK_MD)
    again = sample_molecule("CCO", n_conformers=2, temperatures=[300, 900], snapshots_per_run=2, seed=3, **QUICK_MD)
    assert [structure_id(a) for a in first] == [structure_id(a) for a in again]
    assert len(first) == 8


# ----------------------------------------------------------------------------- resume


def test_rerun_labels_only_what_is_missing(tmp_path):
    structures = rattled_waters(4)
    path = tmp_path / "resume.extxyz"
    label_structures(structures[:2], "gfn2-xtb", path, progress=False)  # the "interrupted" run

    teacher = RecordingTeacher()
    report = label_structures(structures, teacher, path, progress=False)
    assert teacher.computed == [structure_id(atoms) for atoms in structures[2:]]
    assert (report.labelled, report.already_done) == (2, 2)
    assert_labels_match_direct(path, structures)

    report = label_structures(structures, teacher, path, progress=False)  # nothing left
    assert (report.labelled, report.already_done) == (0, 4)


def test_half_written_last_frame_is_dropped_and_redone(tmp_path):
    structures = rattled_waters(3)
    path = tmp_path / "cut.extxyz"
    label_structures(structures, "gfn2-xtb", path, progress=False)
    text = path.read_text()
    path.write_text(text[: len(text) - 60])  # killed while writing the third frame

    assert len(read_done_ids(path)) == 2
    report = label_structures(structures, "gfn2-xtb", path, progress=False)
    assert (report.labelled, report.already_done) == (1, 2)
    assert_labels_match_direct(path, structures)


def labelled_file(path, n_frames):
    """`path` with `n_frames` EMT-labelled waters (EMT: instant); returns the file's bytes."""
    label_structures(rattled_waters(n_frames), EMT(), path, progress=False)
    return path.read_bytes()


@pytest.mark.parametrize(
    "cut", ["in the atom count", "after the atom count", "in the comment", "in an atom line", "the final newline"]
)
def test_only_the_half_written_last_frame_is_cut_off_and_that_is_said(tmp_path, capsys, cut):
    path = tmp_path / "cut.extxyz"
    whole = labelled_file(path, 3)
    two_frames = labelled_file(tmp_path / "two.extxyz", 2)
    assert whole.startswith(two_frames)
    comment_end = whole.index(b"\n", len(two_frames) + 2)
    keep = {
        "in the atom count": len(two_frames) + 1,
        "after the atom count": len(two_frames) + 2,
        "in the comment": comment_end - 20,
        "in an atom line": len(whole) - 30,
        "the final newline": len(whole) - 1,
    }[cut]
    path.write_bytes(whole[:keep])  # killed while writing the third frame

    assert len(read_done_ids(path)) == 2
    assert path.read_bytes() == two_frames
    assert f"dropped a half-written last frame ({keep - len(two_frames)} bytes)" in capsys.readouterr().out
    report = label_structures(rattled_waters(3), EMT(), path, progress=False)
    assert (report.labelled, report.already_done) == (1, 2)
    assert path.read_bytes() == whole


@pytest.mark.parametrize(
    "damage, message",
    [
        ("blank line after frame 2", "line 11, after 2 complete frames, .* is blank"),
        ("atom line lost in frame 2", "ASE cannot read frame 2"),
        ("garbled number in frame 2", "ASE cannot read frame 2 .*could not convert"),
        ("notes", "line 1, after 0 complete frames, .* reads 'my notes'"),
        ("numbered notes", "line 1, after 0 complete frames, .* reads '3'"),
    ],
)
def test_damaged_or_foreign_output_file_is_refused_and_left_unchanged(tmp_path, damage, message):
    path = tmp_path / "out.extxyz"
    lines = labelled_file(path, 6).splitlines(keepends=True)  # 5 lines per water frame
    if damage == "blank line after frame 2":
        lines.insert(10, b"\n")
    elif damage == "atom line lost in frame 2":
        del lines[7]
    elif damage == "garbled number in frame 2":
        lines[7] = lines[7].replace(b".", b"x", 1)
    elif damage == "notes":
        lines = [b"my notes\n", b"buy milk\n"]
    else:  # starts like a frame, but the next line is no ASE comment line
        lines = [b"3\n", b"things to do\n", b"buy milk\n"]
    damaged = b"".join(lines)
    path.write_bytes(damaged)

    for attempt in (
        lambda: read_done_ids(path),
        lambda: label_structures(rattled_waters(7), EMT(), path, progress=False),
    ):
        with pytest.raises(ValueError, match=f"{message}.*left unchanged.*another file with -o"):
            attempt()
        assert path.read_bytes() == damaged


# ----------------------------------------------------------------------------- failures


def test_failing_teacher_is_skipped_and_counted(tmp_path):
    structures = [molecule("H2O"), molecule("NH3"), molecule("CH4")]
    path = tmp_path / "fail.extxyz"
    report = label_structures(structures, FailsOnNitrogen(), path, progress=False)
    assert (report.labelled, report.failed) == (2, 1)
    assert report.failures[0][0] == structure_id(structures[1])
    assert "SCF exploded" in report.failures[0][1]
    assert "failed on 1" in report.summary()
    assert [a.get_chemical_formula() for a in ase.io.read(path, ":")] == ["H2O", "CH4"]


def test_unconverged_scf_is_skipped_and_counted(tmp_path):
    teacher = make_teacher("gfn2-xtb")
    teacher.set(max_iterations=1)  # no SCF converges in one iteration
    report = label_structures(rattled_waters(2), teacher, tmp_path / "scf.extxyz", progress=False)
    assert (report.labelled, report.failed) == (0, 2)
    assert "SCF" in report.failures[0][1]


def test_bad_smiles_names_the_smiles():
    with pytest.raises(ValueError, match="C1CC\\(N"):
        sample_molecule("C1CC(N", n_conformers=1)


@pytest.mark.parametrize(
    "name, message",
    [
        ("dft-of-my-dreams", "unknown teacher"),
        ("no_such_package.module:Calc", "cannot import module"),
        ("ase.calculators.emt:NoSuchClass", "no class or function named 'NoSuchClass'"),
        ("ase.calculators.emt:", "package.module:ClassName"),
    ],
)
def test_bad_teacher_names_fail_clearly(name, message):
    with pytest.raises(ValueError, match=message):
        make_teacher(name)


def test_teacher_from_import_path():
    assert isinstance(make_teacher("ase.calculators.emt:EMT"), EMT)


def test_unsupported_element_refused_before_any_calculation(tmp_path):
    structures = [molecule("H2O"), Atoms("UO2", positions=[[0, 0, 0], [1.8, 0, 0], [-1.8, 0, 0]])]
    path = tmp_path / "uranium.extxyz"
    with pytest.raises(ValueError, match=r"up to Rn .*contain U"):
        label_structures(structures, "gfn2-xtb", path, progress=False)
    assert not path.exists() or path.stat().st_size == 0


# ----------------------------------------------------------------------------- command line


def run_cli(argv):
    parser = argparse.ArgumentParser()
    label_module.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_label_command_samples_labels_and_resumes(tmp_path, capsys):
    out = tmp_path / "cli.extxyz"
    argv = [
        "label",
        "--smiles",
        "C",
        "--conformers",
        "1",
        "--temperatures",
        "300",
        "--snapshots",
        "2",
        "--no-progress",
        "-o",
        str(out),
    ]
    assert run_cli(argv) == 0
    assert "labelled 2 structures" in capsys.readouterr().out
    assert run_cli(argv) == 0
    assert "skipped 2 already labelled" in capsys.readouterr().out
    assert len(ase.io.read(out, ":")) == 2


def test_label_command_reads_structure_files(tmp_path):
    source = tmp_path / "in.xyz"
    ase.io.write(source, rattled_waters(2))
    out = tmp_path / "out.extxyz"
    assert run_cli(["label", "--structures", str(source), "--no-progress", "-o", str(out)]) == 0
    assert len(ase.io.read(out, ":")) == 2


def test_label_command_refuses_a_file_it_cannot_read_before_sampling(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\nbuy milk\n")
    # The bad SMILES would fail the sampling: the output file is checked before it.
    code = cli.main(["label", "--smiles", "C1CC(N", "--no-progress", "-o", str(notes)])
    assert code == 2
    assert "notes.txt is not a labelled extended-XYZ file" in capsys.readouterr().err
    assert notes.read_text() == "my notes\nbuy milk\n"


@pytest.mark.parametrize(
    "argv, error, message",
    [
        (["--smiles", "C1CC(N"], ValueError, "cannot parse the SMILES"),
        (["--structures", "does-not-exist.xyz"], FileNotFoundError, "does-not-exist"),
        (["--smiles", "C", "--teacher", "nonsense"], ValueError, "unknown teacher"),
        ([], ValueError, "nothing to label"),
    ],
)
def test_label_command_bad_input(tmp_path, argv, error, message):
    with pytest.raises(error, match=message):
        run_cli(["label", *argv, "-o", str(tmp_path / "x.extxyz")])
