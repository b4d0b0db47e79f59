"""Active learning in one command: label, train a committee, run student MD, select the
structures the committee disagrees on most, label them, retrain.

    mlff-distiller active-learn --smiles CCO c1ccccc1 --workdir runs/al --rounds 3 -o student.pt

``--data FILE ...`` first copies already-labelled structures (extended XYZ with energies and
forces, e.g. an earlier data set) into the work folder's data set, once; with ``--initial 0``
nothing else is labelled before the first committee. ``--init-model FILE`` starts every member
from that model's weights (fine-tuning, e.g. from a model trained on the ``--data``) instead of
from scratch. ``--device cuda`` trains the committees (their members at the same time, one
process each) and runs the student MD and the committee's forces on a GPU.

Round 0 labels small random displacements of every seed geometry. Each round then trains a
committee of students on everything labelled so far, runs Langevin MD with the first member at
each temperature from every seed, and labels the ``--select`` snapshots of largest committee
disagreement (the largest spread of an atom's force over the members). After the last round a
final committee is trained and its first member written to ``-o``.

Everything lives in the work folder, and every stage leaves a file that says it is done, so a
killed run restarts at the stage it was in, with nothing labelled twice or lost:

    data.extxyz                 every teacher label (appended; ids make relabelling impossible)
    data.imported               marker: the --data files are in data.extxyz
    round<r>/member<k>.pt       committee trained at the start of round r (``.ckpt``: mid-training)
    round<r>/committee.done     marker: all members of that committee are trained
    round<r>/candidates.extxyz  student MD snapshots        (written whole, then renamed)
    round<r>/selected.extxyz    the most disputed of them   (written whole, then renamed)
    round<r>/labelled           marker: the selection is in data.extxyz
    final/member<k>.pt          the committee trained on all data (and final/committee.done)
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import ase.io
import numpy as np
import torch
from ase import Atoms, units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, ZeroRotation
from tqdm import tqdm

from ..files import atomic_path, atomic_write_text
from ..model.calculator import StudentCalculator
from ..model.io import load_model
from ..model.architectures import DEFAULT_ARCHITECTURE, architecture_name, student_config
from .dataset import elements_in, read_structures
from .distortions import random_displacements
from .evaluate import committee_disagreement
from .label import append_frame, label_structures, read_done_ids, structure_id
from .sampling import conformer_to_atoms, embed_conformers, geometry_copy, thermalize_momenta
from .teacher import check_elements, make_teacher
from .train import TrainConfig, add_model_arguments, model_config_from_args, torch_device, train_from_file

# A student force beyond this (eV/A) means the trajectory has left anything physical: it stops
# there, and its last snapshot (the most instructive one) is kept.
MAX_EXPLORATION_FORCE = 50.0
SETTINGS_FILE = "settings.json"
IMPORTED_MARKER = "data.imported"
COMMITTEE_MARKER = "committee.done"  # in a round's folder: all its members are trained
IMPORT_CHUNK = 500  # frames appended (and flushed to disk) at a time by the --data import


@dataclass
class LoopSettings:
    """What a run does; stored in the work folder, and a resumed run must not change it."""

    rounds: int = 3
    committee: int = 3
    temperatures: list = field(default_factory=lambda: [300.0, 600.0, 1000.0])
    md_steps: int = 400
    md_interval: int = 20
    timestep_fs: float = 0.5
    select: int = 50
    initial_per_seed: int = 20  # 0: label no displacements first (start from ``data``)
    initial_amplitudes: list = field(default_factory=lambda: [0.02, 0.05])
    teacher: str = "gfn2-xtb"
    model: dict = field(default_factory=dict)  # the student's config (``to_dict()``) ...
    architecture: str = DEFAULT_ARCHITECTURE  # ... of this architecture (``model/architectures.py``)
    epochs: int = 30
    seed: int = 0
    data: list = field(default_factory=list)  # labelled extxyz files copied into data.extxyz first
    device: str = "cpu"  # training, student MD and committee forces
    batch_size: int = TrainConfig.batch_size
    learning_rate: float = TrainConfig.learning_rate
    max_minutes: float | None = None  # training time limit of each committee member
    init_model: str | None = None  # model file every member starts from (fine-tuning)


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------
def write_whole(path: Path, structures: Sequence[Atoms]) -> None:
    """Write an extxyz file that exists complete or not at all: its existence marks a stage done."""
    with atomic_path(path) as temporary:
        ase.io.write(temporary, list(structures), format="extxyz")


def check_settings(workdir: Path, settings: LoopSettings) -> None:
    """Record the settings on the first run; refuse a resumed run whose settings differ."""
    path = workdir / SETTINGS_FILE
    now = asdict(settings)
    if not path.exists():
        atomic_write_text(path, json.dumps(now, indent=2) + "\n")
        return
    # a setting missing from the file did not exist yet when it was written: that run had its default
    then = {**asdict(LoopSettings()), **json.loads(path.read_text())}
    changed = sorted(key for key in now if then.get(key) != now[key])
    if changed:
        raise ValueError(
            f"{workdir} holds a run with other settings ("
            + ", ".join(f"{key} {then.get(key)!r} then, {now[key]!r} now" for key in changed)
            + "): resume it with the same settings, or use another --workdir"
        )


# ----------------------------------------------------------------------------------------------
# Stages
# ----------------------------------------------------------------------------------------------
def committee(folder: Path, settings: LoopSettings) -> list:
    """The committee members in ``folder`` as frozen float64 models on ``settings.device``."""
    device = torch_device(settings.device)
    return [load_model(folder / f"member{k}.pt").to(device) for k in range(settings.committee)]


def members_at_once(settings: LoopSettings) -> int:
    """How many committee members train at the same time. On a GPU all of them, each in its own
    process: a member's training there waits on kernel launches (batches of a few small
    molecules), so members sharing the card take little longer than one. On a CPU one after the
    other, since they would share its cores."""
    return settings.committee if torch_device(settings.device).type == "cuda" else 1


def train_committee(data: Path, folder: Path, settings: LoopSettings, progress: bool, at_once: int = 1) -> list:
    """Train the members missing in ``folder`` on ``data``, ``at_once`` at a time (each resuming
    from its checkpoint), then mark the stage done; returns the committee."""
    folder.mkdir(parents=True, exist_ok=True)
    missing = [k for k in range(settings.committee) if not (folder / f"member{k}.pt").exists()]
    if at_once > 1 and len(missing) > 1:
        context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
        workers = min(at_once, len(missing))
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=torch.set_num_threads, initargs=(torch.get_num_threads(),)
        ) as pool:
            for done in [pool.submit(train_member, data, folder, settings, k, False) for k in missing]:
                done.result()  # a member's error is raised here
    else:
        for k in missing:
            train_member(data, folder, settings, k, progress)
    (folder / COMMITTEE_MARKER).touch()
    return committee(folder, settings)


def train_member(data: Path, folder: Path, settings: LoopSettings, k: int, progress: bool) -> None:
    """Train member ``k`` into ``folder/member<k>.pt`` (seed ``settings.seed + k``), resuming from
    its checkpoint; ``settings.init_model``, when set, is where every member starts."""
    checkpoint = folder / f"member{k}.ckpt"
    config = TrainConfig(
        epochs=settings.epochs,
        early_stopping_patience=settings.epochs,
        seed=settings.seed + k,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        max_minutes=settings.max_minutes,
        device=settings.device,
    )

    def log(line: str) -> None:
        if progress:
            tqdm.write(f"  member {k}: {line}")
        else:
            print(f"  member {k}: {line}", flush=True)

    train_from_file(
        data,
        folder / f"member{k}.pt",
        student_config(settings.architecture, settings.model),
        config,
        validation_fraction=0.1,
        checkpoint=checkpoint,
        resume=checkpoint.exists(),
        progress=progress,
        log=log,
        initial_model=settings.init_model,
    )
    checkpoint.unlink(missing_ok=True)


def explore(model, seeds: Sequence[Atoms], settings: LoopSettings, rng: np.random.Generator) -> list[Atoms]:
    """Snapshots of Langevin MD driven by ``model`` from every seed at every temperature; a
    trajectory whose forces blow up stops there, its last snapshot kept."""
    snapshots = []
    for seed_index, seed in enumerate(seeds):
        for temperature in settings.temperatures:
            atoms = geometry_copy(seed)
            atoms.calc = StudentCalculator(model)
            thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
            Stationary(atoms)
            ZeroRotation(atoms)
            dynamics = Langevin(
                atoms,
                timestep=settings.timestep_fs * units.fs,
                temperature_K=temperature,
                friction=0.02 / units.fs,
                fixcm=False,
                rng=rng,
            )
            for step in range(settings.md_interval, settings.md_steps + 1, settings.md_interval):
                dynamics.run(settings.md_interval)
                snapshot = geometry_copy(atoms)
                snapshot.info.update(seed.info)
                snapshot.info.update(
                    sampler="student_md", temperature=float(temperature), md_step=step, seed_structure=seed_index
                )
                snapshots.append(snapshot)
                forces = atoms.get_forces()
                if not np.isfinite(forces).all() or np.abs(forces).max() > MAX_EXPLORATION_FORCE:
                    break
    return snapshots


def disagreements(members, structures: Sequence[Atoms]) -> np.ndarray:
    """[S] committee disagreement of each structure (eV/A, see ``evaluate.committee_disagreement``)."""
    values = []
    for atoms in structures:
        forces = []
        for member in members:
            atoms = atoms.copy()
            atoms.calc = StudentCalculator(member)
            forces.append(atoms.get_forces())
        values.append(committee_disagreement(np.stack(forces), np.array([len(atoms)]))[0])
    return np.array(values)


def most_disputed(members, candidates: Sequence[Atoms], n: int) -> list[Atoms]:
    """The ``n`` candidates of largest committee disagreement, with it in ``info``."""
    spread = disagreements(members, candidates)
    chosen = np.sort(np.argsort(spread)[::-1][:n])
    selected = []
    for k in chosen:
        atoms = geometry_copy(candidates[k])
        atoms.info.update(candidates[k].info)
        atoms.info["disagreement"] = float(spread[k])
        selected.append(atoms)
    return selected


def initial_structures(seeds: Sequence[Atoms], settings: LoopSettings, rng: np.random.Generator) -> list[Atoms]:
    if settings.initial_per_seed == 0:
        return []
    per_amplitude = max(1, settings.initial_per_seed // len(settings.initial_amplitudes))
    return [
        atoms for seed in seeds for atoms in random_displacements(seed, settings.initial_amplitudes, per_amplitude, rng)
    ]


def read_data_files(files: Sequence[str], teacher_name: str) -> list[Atoms]:
    """The labelled structures of the ``--data`` files, in order; ValueError for a structure
    without energy or forces, or labelled by another teacher than this loop's (``info["teacher"]``,
    where the file says)."""
    structures = []
    for file in files:
        for index, atoms in enumerate(read_structures(file)):
            labelled_by = atoms.info.get("teacher")
            if labelled_by is not None and str(labelled_by).lower() != teacher_name.lower():
                raise ValueError(
                    f"structure {index} of {file} was labelled by the teacher {labelled_by!r}, and this "
                    f"loop labels with {teacher_name!r}: energies of two teachers do not mix. Use "
                    f"--teacher {labelled_by} or data of this teacher"
                )
            atoms.info.setdefault("source", Path(file).name)
            structures.append(atoms)
    return structures


def import_data(structures: Sequence[Atoms], data: Path) -> int:
    """Append the labelled ``structures`` to ``data``, each once: a structure whose id
    (``label.structure_id``) is already there, or earlier in the list, is skipped, so an
    interrupted import repeated adds nothing twice. Returns the number appended."""
    done = read_done_ids(data)
    new = []
    for atoms in structures:
        label_id = structure_id(atoms)
        if label_id not in done:
            done.add(label_id)
            atoms.info["label_id"] = label_id
            new.append(atoms)
    data.parent.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(new), IMPORT_CHUNK):
        append_frame(data, new[start : start + IMPORT_CHUNK])
    return len(new)


# ----------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------
def run_loop(
    seeds: Sequence[Atoms],
    workdir: str | Path,
    settings: LoopSettings,
    output: str | Path | None = None,
    teacher=None,
    progress: bool = True,
) -> Path:
    """Run (or resume) the loop in ``workdir``; returns the final committee's first member file
    (copied to ``output`` when given). ``teacher``: an ASE calculator instead of
    ``settings.teacher`` (tests)."""
    workdir = Path(workdir)
    torch_device(settings.device)  # no GPU: say so before any work
    if not seeds:
        raise ValueError("no seed structures: give --smiles or --structures")
    if settings.initial_per_seed < 0:
        raise ValueError("--initial must be 0 or more")
    if settings.initial_per_seed == 0 and not settings.data:
        raise ValueError(
            "--initial 0 without --data leaves nothing to train the first committee on: give "
            "--data FILE (labelled structures) or displaced copies to label (--initial N)"
        )
    settings.data = [str(Path(file).resolve()) for file in settings.data]
    given = read_data_files(settings.data, settings.teacher)
    if settings.init_model:
        settings.init_model = str(Path(settings.init_model).resolve())
        start = load_model(settings.init_model)
        settings.model, settings.architecture = start.config.to_dict(), architecture_name(start)
    settings.model = {**settings.model, "elements": settings.model.get("elements") or elements_in([*seeds, *given])}
    for what, structures in (("seed structures", seeds), ("--data structures", given)):
        missing = sorted(set(elements_in(structures)) - set(settings.model["elements"]))
        if missing:
            raise ValueError(
                f"the {what} contain {', '.join(missing)}, which the model's elements "
                f"{settings.model['elements']} lack: add them to --elements"
            )
    teacher = teacher or make_teacher(settings.teacher)
    check_elements(teacher, seeds)  # before hours of work
    check_settings(workdir, settings)
    data = workdir / "data.extxyz"
    at_once = members_at_once(settings)
    bar = tqdm(
        total=4 * settings.rounds + 2 + bool(given),
        desc="active learning",
        unit="stage",
        disable=not progress,
        dynamic_ncols=True,
    )

    def stage(name: str, done_marker: Path, work) -> None:
        """Run ``work`` unless ``done_marker`` exists (a stage finished before a kill)."""
        bar.set_postfix_str(name)
        if not done_marker.exists():
            work()
        bar.update(1)

    def label(structures: Sequence[Atoms], marker: Path) -> None:
        report_failures(label_structures(structures, teacher, data, teacher_name=settings.teacher, progress=progress))
        marker.touch()

    def copy_data() -> None:
        added = import_data(given, data)
        if progress:
            tqdm.write(
                f"{data}: added {added} of the {len(given)} --data structures ({len(given) - added} were there already)"
            )
        (workdir / IMPORTED_MARKER).touch()

    if given:
        stage("copy --data", workdir / IMPORTED_MARKER, copy_data)
    initial = workdir / "initial.labelled"
    stage(
        "label initial",
        initial,
        lambda: label(initial_structures(seeds, settings, np.random.default_rng([settings.seed, 0])), initial),
    )
    for r in range(settings.rounds):
        folder = workdir / f"round{r}"
        candidates, selected, labelled = folder / "candidates.extxyz", folder / "selected.extxyz", folder / "labelled"
        members = []
        stage(
            f"round {r}: train committee",
            folder / COMMITTEE_MARKER,
            lambda: members.extend(train_committee(data, folder, settings, progress, at_once)),
        )
        members = members or committee(folder, settings)
        stage(
            f"round {r}: student MD",
            candidates,
            lambda: write_whole(
                candidates, explore(members[0], seeds, settings, np.random.default_rng([settings.seed, r + 1]))
            ),
        )
        stage(
            f"round {r}: select",
            selected,
            lambda: write_whole(selected, most_disputed(members, ase.io.read(candidates, ":"), settings.select)),
        )
        stage(f"round {r}: label", labelled, lambda: label(ase.io.read(selected, ":"), labelled))
    final = workdir / "final"
    stage(
        "final committee", final / COMMITTEE_MARKER, lambda: train_committee(data, final, settings, progress, at_once)
    )
    bar.close()
    result = workdir / "final" / "member0.pt"
    if output:
        with atomic_path(output) as temporary:
            shutil.copyfile(result, temporary)
        result = Path(output)
    return result


def report_failures(report) -> None:
    if report.failed:
        tqdm.write(f"teacher failed on {report.failed} structures; they were skipped: {report.summary()}")


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------
def seed_structures(smiles: Sequence[str], structures_file: str | None, seed: int) -> list[Atoms]:
    seeds = []
    for text in smiles:
        atoms = conformer_to_atoms(embed_conformers(text, 1, seed), 0)
        atoms.info.update(molecule=text, smiles=text)
        seeds.append(atoms)
    if structures_file:
        if not Path(structures_file).exists():
            raise FileNotFoundError(f"structure file {structures_file} does not exist")
        seeds += ase.io.read(structures_file, ":")
    return seeds


def run(args) -> int:
    torch.set_num_threads(args.threads)
    torch_device(args.device)  # before embedding the seeds
    settings = LoopSettings(
        rounds=args.rounds,
        committee=args.committee,
        temperatures=args.temperatures,
        md_steps=args.md_steps,
        md_interval=args.md_interval,
        select=args.select,
        initial_per_seed=args.initial,
        teacher=args.teacher,
        model=model_config_from_args(args).to_dict(),
        epochs=args.epochs,
        seed=args.seed,
        data=args.data,
        device=args.device,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        max_minutes=args.max_minutes,
        init_model=args.init_model,
    )
    if settings.committee < 2:
        raise ValueError("--committee must be at least 2: one model cannot disagree with itself")
    result = run_loop(seed_structures(args.smiles, args.structures, args.seed), args.workdir, settings, args.output)
    print(f"model written to {result}")
    return 0


def register(subparsers) -> None:
    d = LoopSettings()
    parser = subparsers.add_parser(
        "active-learn",
        help="label, train a committee, student MD, select, repeat",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--smiles", nargs="+", default=[], metavar="S", help="seed molecules")
    parser.add_argument("--structures", metavar="FILE", help="seed geometries (any ASE-readable file)")
    parser.add_argument("--workdir", required=True, help="work folder (a rerun resumes it)")
    parser.add_argument("-o", "--output", help="copy the final model here")
    parser.add_argument("--teacher", default=d.teacher, help=f"default {d.teacher}")
    parser.add_argument("--rounds", type=int, default=d.rounds, help=f"default {d.rounds}")
    parser.add_argument("--committee", type=int, default=d.committee, help=f"members, default {d.committee}")
    parser.add_argument("--temperatures", type=float, nargs="+", default=d.temperatures, metavar="K")
    parser.add_argument("--md-steps", type=int, default=d.md_steps, help=f"per trajectory, default {d.md_steps}")
    parser.add_argument(
        "--md-interval", type=int, default=d.md_interval, help=f"steps between snapshots, default {d.md_interval}"
    )
    parser.add_argument(
        "--select", type=int, default=d.select, help=f"structures labelled per round, default {d.select}"
    )
    parser.add_argument(
        "--data",
        nargs="+",
        default=[],
        metavar="FILE",
        help="labelled structures (extended XYZ with energies and forces) copied into the work "
        "folder's data set before anything is labelled, once",
    )
    parser.add_argument(
        "--initial",
        type=int,
        default=d.initial_per_seed,
        help=f"displaced copies of each seed labelled first, default {d.initial_per_seed} (0: none, with --data)",
    )
    add_model_arguments(parser)
    parser.add_argument("--epochs", type=int, default=d.epochs, help=f"per committee member, default {d.epochs}")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help=f"structures, default {d.batch_size}")
    parser.add_argument(
        "--learning-rate",
        "--lr",
        type=float,
        default=d.learning_rate,
        help=f"peak learning rate, default {d.learning_rate}",
    )
    parser.add_argument("--max-minutes", type=float, help="training time limit of each committee member")
    parser.add_argument(
        "--init-model",
        metavar="FILE",
        help="start every member from this model's weights (fine-tuning); its configuration replaces "
        "the model options (--features and the rest)",
    )
    parser.add_argument(
        "--device",
        default=d.device,
        help=f"cpu, cuda or cuda:N: training, student MD and committee forces (default {d.device})",
    )
    parser.add_argument("--seed", type=int, default=d.seed, help=f"default {d.seed}")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.set_defaults(func=run)
