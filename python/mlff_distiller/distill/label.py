"""Label structures with the teacher and append them to an extended-XYZ training file.

Each labelled frame stores energy (eV), forces (eV/A) and, for periodic cells, stress (eV/A^3)
the way ASE's SinglePointCalculator does, so ``ase.io.read(path, ":")`` gives Atoms whose
``get_potential_energy()``, ``get_forces()`` and ``get_stress()`` return the teacher's values.

Labelling is resumable. Every structure gets a stable id (``info["label_id"]``, a hash of its
elements, positions and cell); a second run with the same inputs reads the ids already in the
output file, skips them and labels only the rest. Frames are appended one at a time, so an
interrupted run loses at most the structure being computed. The only change a resumed run makes
to the existing file is to cut off a half-written last frame; a file that is not extended XYZ, or
is damaged anywhere else, is refused and left as it is.

Also provides the ``label`` sub-command of ``mlff-distiller`` (see `register`).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import ase.io
import numpy as np
from ase import Atoms
from ase.calculators.calculator import BaseCalculator
from ase.calculators.singlepoint import SinglePointCalculator
from tqdm import tqdm

from .teacher import GFN2_XTB, check_elements, make_teacher

# Positions are hashed after rounding to this many decimals (A), so that ids do not depend on
# noise far below any physical meaning.
ID_DECIMALS = 5


@dataclass
class LabelReport:
    """What one `label_structures` call did."""

    labelled: int = 0  # newly computed and written
    already_done: int = 0  # found in the output file (or repeated in the input) and skipped
    failures: list[tuple[str, str]] = field(default_factory=list)  # (label_id, reason)

    @property
    def failed(self) -> int:
        return len(self.failures)

    def summary(self) -> str:
        return (
            f"labelled {self.labelled} structures, skipped {self.already_done} already "
            f"labelled, teacher failed on {self.failed}"
        )


# ----------------------------------------------------------------------------- ids and resume


def structure_id(atoms: Atoms) -> str:
    """Stable id of a structure: its formula and a hash of its atomic numbers, rounded
    positions, cell, pbc and total charge, e.g. ``C9H8O4-3f2a9c0d1e2b4a67``.
    The same structure always gets the same id, in any run."""
    digest = hashlib.sha1()
    # "+ 0.0" turns -0.0 into 0.0, which would otherwise hash differently.
    for array in (
        np.asarray(atoms.numbers, dtype=np.int64),
        np.round(atoms.positions, ID_DECIMALS) + 0.0,
        np.round(np.asarray(atoms.cell), ID_DECIMALS) + 0.0,
        np.asarray(atoms.pbc, dtype=np.int8),
        np.round([atoms.get_initial_charges().sum()], 3) + 0.0,
    ):
        digest.update(np.ascontiguousarray(array).tobytes())
    # The formula prefix makes ids readable and keeps extxyz from parsing one as a number.
    return f"{atoms.get_chemical_formula()}-{digest.hexdigest()[:16]}"


def atom_count(line: bytes) -> int | None:
    """The atom count that starts an extxyz frame, or None if `line` is not one."""
    try:
        count = int(line)
    except ValueError:
        return None
    return count if count >= 0 else None


def count_complete_frame_lines(lines: list[bytes]) -> int:
    """Number of leading `lines` that form whole extxyz frames.

    A frame is a line with the atom count N, a comment line and N atom lines; it is whole when
    all of them are there and the last ends with a newline.
    """
    line = 0
    while line < len(lines):
        n_atoms = atom_count(lines[line])
        if n_atoms is None:
            break
        end = line + n_atoms + 2
        if end > len(lines) or not lines[end - 1].endswith(b"\n"):
            break
        line = end
    return line


def is_half_written_frame(lines: list[bytes]) -> bool:
    """Whether `lines` are what a kill during `append_frame` leaves: the beginning of one frame
    as ASE writes it (atom count, then a comment line with ``Properties=``), cut short."""
    n_atoms = atom_count(lines[0])
    if n_atoms is None:
        return False
    # A whole comment line without Properties= is not ASE's: someone else's file, not ours.
    if len(lines) > 1 and lines[1].endswith(b"\n") and b"Properties=" not in lines[1]:
        return False
    return len(lines) < n_atoms + 2 or (len(lines) == n_atoms + 2 and not lines[-1].endswith(b"\n"))


def refuse_to_append(path: Path, problem: str) -> ValueError:
    return ValueError(
        f"{path} is not a labelled extended-XYZ file that can be resumed: {problem}. It was left "
        f"unchanged. Repair it, move it away, or write to another file with -o"
    )


def read_labelled_frames(path: Path) -> tuple[list[Atoms], int]:
    """Frames of the existing output file and the byte length of the part they fill.

    What follows that part may only be a half-written last frame, left by an interrupted run;
    anything else (another format, a frame damaged in the middle, a stray line) raises
    ValueError, and the file is never modified here.
    """
    with open(path, "rb") as stream:
        lines = stream.readlines()
    n_complete = count_complete_frame_lines(lines)
    complete = b"".join(lines[:n_complete])
    frames = []
    try:  # frame by frame, to say which one is damaged
        frames.extend(ase.io.iread(io.StringIO(complete.decode()), ":", format="extxyz"))
    except Exception as exc:  # ASE raises many kinds for a malformed file
        raise refuse_to_append(path, f"ASE cannot read frame {len(frames) + 1} ({type(exc).__name__}: {exc})") from exc
    if lines[n_complete:] and not is_half_written_frame(lines[n_complete:]):
        shown = lines[n_complete].strip()[:60].decode(errors="replace")
        raise refuse_to_append(
            path,
            f"line {n_complete + 1}, after {len(frames)} complete frames, should start a frame "
            f"with its atom count but {f'reads {shown!r}' if shown else 'is blank'}",
        )
    return frames, len(complete)


def read_done_ids(path: Path) -> set[str]:
    """Ids of the structures already labelled in `path` (empty if the file does not exist).

    A half-written last frame is cut off (and will be labelled again); a file that is damaged
    elsewhere or not extended XYZ raises ValueError and is left as it is.
    """
    if not path.exists():
        return set()
    frames, complete_bytes = read_labelled_frames(path)
    partial_bytes = path.stat().st_size - complete_bytes
    if partial_bytes:
        with open(path, "r+b") as stream:
            stream.truncate(complete_bytes)
        tqdm.write(
            f"{path}: dropped a half-written last frame ({partial_bytes} bytes) left by an "
            "interrupted run; its structure is labelled again"
        )
    return {str(atoms.info.get("label_id")) for atoms in frames}


# ----------------------------------------------------------------------------- labelling


class TeacherFailure(Exception):
    """The teacher raised, did not converge, or returned non-finite numbers."""


def teacher_can_compute_stress(teacher: BaseCalculator) -> bool:
    return "stress" in getattr(teacher, "implemented_properties", ("stress",))


def compute_label(atoms: Atoms, teacher: BaseCalculator) -> Atoms:
    """Copy of `atoms` holding the teacher's energy, forces (and stress if periodic).

    Raises TeacherFailure if the teacher fails in any way.
    """
    labelled = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc, info=dict(atoms.info))
    for name in ("initial_charges", "initial_magmoms"):  # charge and spin for the teacher
        if atoms.has(name):
            labelled.set_array(name, atoms.get_array(name))
    if hasattr(teacher, "reset"):
        teacher.reset()  # every structure from scratch: results independent of the order
    labelled.calc = teacher
    try:
        results = {"energy": labelled.get_potential_energy(), "forces": labelled.get_forces()}
        if labelled.pbc.all() and teacher_can_compute_stress(teacher):
            results["stress"] = labelled.get_stress()
    except Exception as exc:  # any teacher error (e.g. SCF not converged) fails this one only
        raise TeacherFailure(f"{type(exc).__name__}: {exc}") from exc
    finally:
        labelled.calc = None
    if not all(np.all(np.isfinite(value)) for value in results.values()):
        raise TeacherFailure("non-finite energy, forces or stress")
    labelled.calc = SinglePointCalculator(labelled, **results)
    return labelled


def append_frame(path: Path, atoms: Atoms | list[Atoms]) -> None:
    """Append one frame (or a list of frames) to the extxyz file in a single write, flushed to disk."""
    text = io.StringIO()
    ase.io.write(text, atoms, format="extxyz")
    with open(path, "a") as stream:
        stream.write(text.getvalue())
        stream.flush()
        os.fsync(stream.fileno())


def label_structures(
    structures: Iterable[Atoms],
    teacher: BaseCalculator | str,
    out_path: str | os.PathLike,
    teacher_name: str | None = None,
    progress: bool = True,
) -> LabelReport:
    """Label `structures` with `teacher` and append them to the extxyz file `out_path`.

    `teacher` is an ASE calculator or a name for `make_teacher`. Structures whose id is already
    in `out_path` are skipped, so an interrupted call can simply be repeated. Structures on
    which the teacher fails are skipped and listed in the returned report. Each frame gets
    ``info["label_id"]`` and ``info["teacher"]`` in addition to the structure's own info.
    Raises ValueError before any calculation if an element is beyond the teacher's range.
    """
    if isinstance(teacher, str):
        teacher_name = teacher_name or teacher
        teacher = make_teacher(teacher)
    teacher_name = teacher_name or type(teacher).__name__
    structures = list(structures)
    check_elements(teacher, structures)

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    done = read_done_ids(out_path)
    report = LabelReport()
    to_do = []
    for atoms in structures:
        label_id = structure_id(atoms)
        if label_id in done:
            report.already_done += 1
        else:
            done.add(label_id)  # also skips repeats within this input
            to_do.append((label_id, atoms))

    for label_id, atoms in tqdm(to_do, desc="labelling", unit="structure", disable=not progress):
        try:
            labelled = compute_label(atoms, teacher)
        except TeacherFailure as failure:
            report.failures.append((label_id, str(failure)))
            tqdm.write(f"teacher failed on structure {label_id} ({atoms.get_chemical_formula()}): {failure}; skipped")
            continue
        labelled.info.update(label_id=label_id, teacher=teacher_name)
        append_frame(out_path, labelled)
        report.labelled += 1
    return report


# ----------------------------------------------------------------------------- command line


def register(subparsers) -> None:
    """Add the ``label`` sub-command to an argparse sub-parsers object."""
    parser = subparsers.add_parser(
        "label",
        help="sample geometries and label them with the teacher (resumable)",
        description=(
            "Sample off-equilibrium geometries (molecules from SMILES, liquid water boxes) or "
            "read them from a file, label them with the teacher and append them to an extxyz "
            "file. Running the same command again skips what is already labelled."
        ),
    )
    sources = parser.add_argument_group("what to label (at least one)")
    sources.add_argument(
        "--smiles", nargs="+", metavar="S", default=[], help="molecules to sample by MMFF94 molecular dynamics"
    )
    sources.add_argument(
        "--structures", metavar="FILE", help="label every structure of this ASE-readable file as it is"
    )
    sources.add_argument(
        "--water-boxes", type=int, default=0, metavar="N", help="number of periodic liquid water snapshots (default 0)"
    )
    parser.add_argument(
        "--water-molecules",
        type=int,
        default=27,
        metavar="M",
        help="water molecules per box (default 27, i.e. 81 atoms)",
    )
    parser.add_argument(
        "--teacher", default=GFN2_XTB, help="gfn2-xtb (default) or package.module:ClassName of an ASE calculator"
    )
    parser.add_argument("--conformers", type=int, default=3, help="RDKit conformers per SMILES (default 3)")
    parser.add_argument(
        "--temperatures",
        type=float,
        nargs="+",
        default=[300.0, 600.0, 900.0],
        metavar="K",
        help="MD temperatures for molecules (default 300 600 900)",
    )
    parser.add_argument(
        "--snapshots",
        type=int,
        default=15,
        help="snapshots per MD run, i.e. per conformer and temperature (default 15)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.extxyz", help="extxyz file to append to")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def structures_from_args(args: argparse.Namespace) -> list[Atoms]:
    """Sample or read the structures that the ``label`` arguments ask for."""
    from .sampling import sample_molecule, sample_water_boxes

    if not args.smiles and not args.structures and args.water_boxes <= 0:
        raise ValueError("nothing to label: give --smiles, --structures or --water-boxes")
    for option in ("conformers", "snapshots", "water_molecules"):
        if getattr(args, option) < 1:
            raise ValueError(f"--{option.replace('_', '-')} must be at least 1")
    structures = []
    for smiles in args.smiles:
        structures += sample_molecule(
            smiles,
            n_conformers=args.conformers,
            temperatures=args.temperatures,
            snapshots_per_run=args.snapshots,
            seed=args.seed,
        )
    if args.structures:
        if not Path(args.structures).exists():
            raise FileNotFoundError(f"structure file {args.structures} does not exist")
        structures += ase.io.read(args.structures, ":")
    if args.water_boxes > 0:
        structures += sample_water_boxes(args.water_boxes, n_molecules=args.water_molecules, seed=args.seed)
    return structures


def run(args: argparse.Namespace) -> int:
    teacher = make_teacher(args.teacher)  # fail on a bad name before the sampling work
    if Path(args.output).exists():
        read_labelled_frames(Path(args.output))  # and on an output file that cannot be resumed
    structures = structures_from_args(args)
    report = label_structures(
        structures, teacher, args.output, teacher_name=args.teacher, progress=not args.no_progress
    )
    print(f"{args.output}: {report.summary()}")
    return 0
