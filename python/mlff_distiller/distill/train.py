"""Training the student on teacher energies and forces.

The forces in the loss come from ``method="analytic"``, the hand-written backward that LAMMPS
runs: its operations are differentiable, so the loss on those forces back-propagates to the
weights. What is trained is therefore exactly what is run (tests check that the resulting
parameter gradients equal those of autograd's double backward).

Loss per batch:  w_E * mean_s ((E_s - E_s^ref) / N_s)^2  +  w_F * mean_{i,a} (F_ia - F_ia^ref)^2,
in eV and eV/A. Adam, a cosine learning-rate schedule with linear warm-up (or
ReduceLROnPlateau), early stopping on the validation loss, and a checkpoint after every epoch
from which training resumes exactly where it stopped. A checkpoint records the run it belongs to
(model, optimisation settings, a fingerprint of the data), so that it is never overwritten by a
fresh run nor continued with other data or settings.

Training runs on one device (``TrainConfig.device``: "cpu", "cuda", "cuda:N"): the model and the
data sets are moved there once, every batch is built there, and nothing waits for the device
within an epoch: the running metrics stay on it and are read once per epoch (and, with a progress
bar, at most once a second), and on a GPU the fused Adam kernel skips a non-finite step itself.
Checkpoints and model files hold CPU tensors only, so they load anywhere, and a run written on
one device resumes on another.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from ase import Atoms

from ..files import atomic_path
from ..model.architectures import DEFAULT_ARCHITECTURE, architecture_name, build_student
from ..model.graph import graph_from_atoms
from ..model.interface import StudentConfig, StudentModel
from ..model.io import load_model, save_model
from ..model.painn import DTYPES, PaiNNConfig
from .dataset import (
    Batch,
    GraphDataset,
    as_device,
    elements_in,
    fit_energy_shifts,
    force_rms,
    read_structures,
    split_structures,
)
from .metrics import collect_predictions, energy_errors, force_errors, predict

CHECKPOINT_FORMAT = "mlff-distiller-checkpoint"
CHECKPOINT_VERSION = 2  # 2: with the data fingerprints
SCHEDULES = ("cosine", "plateau")
CHECKPOINT_KEYS = {"model_config", "model", "optimizer", "scheduler", "train_config", "data", "state"}
# TrainConfig fields that only say when to stop: a resumed run may change them.
STOPPING_FIELDS = ("epochs", "early_stopping_patience", "max_minutes")
# ... and the device: a run written on a GPU may continue on a CPU and the other way round.
RESUME_MAY_CHANGE = (*STOPPING_FIELDS, "device")
DEVICE_NAME = re.compile(r"cpu|cuda(:\d+)?")
POSTFIX_SECONDS = 1.0  # a progress bar shows the running metrics this often (reading them waits for a GPU)
# The student that `train`, `active-learn` and `train_from_file` build unless told otherwise: the
# size of the shipped default model (v1), so that a first model is comparable to the one shipped.
# No elements: those of the data.
STUDENT_DEFAULTS = PaiNNConfig(
    elements=[], n_features=64, n_layers=3, n_radial=20, cutoff=5.0, repulsion=False, repulsion_reach=0.75
)


@dataclass
class TrainConfig:
    """Optimisation settings; stored in checkpoints and model metadata, so plain types only."""

    epochs: int = 100
    batch_size: int = 8
    learning_rate: float = 3e-3
    min_learning_rate: float = 1e-5
    schedule: str = "cosine"  # "cosine" (with warm-up) or "plateau"
    warmup_epochs: float = 1.0  # cosine: linear warm-up from 0 over this many epochs
    plateau_factor: float = 0.5  # plateau: multiply the learning rate by this ...
    plateau_patience: int = 5  # ... after this many epochs without a better validation loss
    # on the squared energy error per atom (eV^2); at 1.0 the energy error per atom of the default
    # model stayed ~3x larger for the same force error
    energy_weight: float = 10.0
    force_weight: float = 1.0  # on the squared force component error ((eV/A)^2)
    early_stopping_patience: int = 30  # stop after this many epochs without improvement
    max_grad_norm: float = 10.0  # clip rare large steps (from distorted, high-force structures)
    max_minutes: float | None = None  # stop (keeping the best model) after this much training
    seed: int = 0
    dtype: str = "float32"
    device: str = "cpu"  # "cpu", "cuda" (the current CUDA device) or "cuda:N"

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}: use one of {SCHEDULES}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}: use one of {sorted(DTYPES)}")
        if self.batch_size < 1 or self.epochs < 1:
            raise ValueError("batch_size and epochs must be at least 1")
        if self.learning_rate <= 0 or self.min_learning_rate < 0:
            raise ValueError(f"learning_rate ({self.learning_rate}) must be positive, min_learning_rate not negative")
        check_device_name(self.device)


def check_device_name(device: str) -> None:
    if not isinstance(device, str) or not DEVICE_NAME.fullmatch(device):
        raise ValueError(f"unknown device {device!r}: use cpu, cuda or cuda:N")


def torch_device(device: str) -> torch.device:
    """The torch device for a ``--device`` value; ValueError at once, naming the fix, when this
    machine cannot give it (no CUDA, or no GPU of that number)."""
    check_device_name(device)
    if device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(
            f"--device {device}: torch sees no CUDA device (torch {torch.__version__}, CUDA build: "
            f"{torch.version.cuda or 'no'}); use --device cpu, or run on a machine with an NVIDIA GPU "
            "and a CUDA build of torch"
        )
    count = torch.cuda.device_count()
    _, _, index = device.partition(":")
    if index and int(index) >= count:
        raise ValueError(
            f"--device {device}: torch sees {count} CUDA device(s), cuda:0 to cuda:{count - 1} "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); choose one "
            "of them, or --device cuda"
        )
    return as_device(device)


@dataclass
class TrainState:
    """Everything besides model, optimizer and scheduler that a resumed run needs."""

    epoch: int = 0  # epochs completed
    best_loss: float = math.inf
    best_epoch: int = 0
    best_model: dict | None = None
    epochs_since_best: int = 0
    elapsed_s: float = 0.0  # training wall time so far, over all runs
    history: list = field(default_factory=list)  # one dict of metrics per epoch


# ----------------------------------------------------------------------------------------------
# Model set-up
# ----------------------------------------------------------------------------------------------
def build_model(
    config: StudentConfig, structures: Sequence[Atoms], seed: int = 0, dtype: torch.dtype = torch.float32
) -> StudentModel:
    """A freshly initialised student (of the architecture of ``config``) whose reference energies
    and energy scale are fitted to the structures.

    Reference energies: least-squares atomic energies, so the network only learns what is left
    (the interaction energy). Scale: the force RMS, the energy scale of that remainder. With
    terms without weights (``config.repulsion``) the reference energies are fitted to the teacher
    minus those terms, which the network then learns on top of.
    """
    torch.manual_seed(seed)
    model = build_student(config)
    shifts = fit_energy_shifts(structures, config.elements, prior_energies(model, structures))
    model.set_reference_energies(shifts, force_rms(structures))
    return model.to(dtype)


def prior_energies(model: StudentModel, structures: Sequence[Atoms]) -> np.ndarray | None:
    """[S] energy of the model's terms without weights (its repulsion) in each structure (eV);
    None without such terms."""
    energies = []
    with torch.no_grad():
        for atoms in structures:
            g = graph_from_atoms([atoms], model.elements, model.cutoff, torch.float64)
            energy = model.prior_energy(g.species, g.edge_i, g.edge_j, g.r_ij)
            if energy is None:
                return None
            energies.append(float(energy))
    return np.array(energies)


# ----------------------------------------------------------------------------------------------
# Loss and one epoch
# ----------------------------------------------------------------------------------------------
def loss_terms(model: StudentModel, batch: Batch) -> dict:
    """Squared errors of a batch, forces from the analytic path; differentiable w.r.t. weights.

    Returns energy_mse (eV^2 per atom^2, over structures), force_mse ((eV/A)^2, over
    components), and the absolute errors energy_ae [B] (eV/atom) and force_ae [N,3] (eV/A).
    """
    energy, forces = predict(model, batch, method="analytic")
    energy_error = (energy - batch.energy) / batch.n_atoms
    force_error = forces - batch.forces
    return {
        "energy_mse": (energy_error**2).mean(),
        "force_mse": (force_error**2).mean(),
        "energy_ae": energy_error.detach().abs(),
        "force_ae": force_error.detach().abs(),
    }


def weighted_loss(terms: dict, config: TrainConfig):
    return config.energy_weight * terms["energy_mse"] + config.force_weight * terms["force_mse"]


class RunningMetrics:
    """Energy MAE per atom and force MAE (meV) accumulated over the batches of an epoch.

    The sums stay on the device (float64) and are read only by `summary`: adding a batch never
    waits for a GPU. A batch whose loss or gradient was not finite (no step taken) adds nothing
    but its count of skipped batches.
    """

    def __init__(self, device: torch.device):
        # loss, energy |error| (eV/atom), force |error| (eV/A), structures, components, finite batches
        self.totals = torch.zeros(6, dtype=torch.float64, device=device)
        self.n_batches = 0

    def add(self, terms: dict, loss: torch.Tensor, finite: torch.Tensor) -> None:
        ones = torch.ones_like(loss, dtype=torch.float64)
        values = torch.stack(
            [
                loss.detach().double(),
                terms["energy_ae"].sum().double(),
                terms["force_ae"].sum().double(),
                ones * terms["energy_ae"].numel(),
                ones * terms["force_ae"].numel(),
                ones,
            ]
        )
        self.totals += torch.where(finite, values, 0.0)
        self.n_batches += 1

    def summary(self) -> dict:
        """The epoch so far (reads the device once)."""
        loss, energy_ae, force_ae, n_structures, n_components, n_finite = self.totals.tolist()
        return {
            "loss": loss / max(n_finite, 1),
            "energy_mae_meV_per_atom": 1e3 * energy_ae / max(n_structures, 1),
            "force_mae_meV_per_A": 1e3 * force_ae / max(n_components, 1),
            "skipped_batches": self.n_batches - int(n_finite),
        }


def uses_fused_adam(device: torch.device) -> bool:
    """Adam's fused kernel on a GPU: it takes the skip of a non-finite step on the device. On the
    CPU torch's default kernel, as always (reading the flag there costs nothing)."""
    return device.type == "cuda"


def make_optimizer(model: StudentModel, config: TrainConfig, device: torch.device) -> torch.optim.Adam:
    return torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, fused=True if uses_fused_adam(device) else None
    )


def optimizer_step(optimizer: torch.optim.Adam, finite: torch.Tensor) -> None:
    """One Adam step, none if ``finite`` (a device bool) is False: one non-finite batch would turn
    every weight into NaN for the rest of the run. The fused kernel reads the flag on the device
    (``found_inf``, as AMP's GradScaler passes it), so a GPU step never waits for the host."""
    if optimizer.defaults["fused"]:
        optimizer.found_inf = (~finite).float()
        optimizer.step()
    elif finite:
        optimizer.step()


def train_one_epoch(
    model, optimizer, scheduler, dataset: GraphDataset, config: TrainConfig, epoch: int, progress: bool | None
) -> dict:
    """One pass over the training set in a shuffled order that depends only on (seed, epoch)."""
    from tqdm import tqdm

    model.train()
    running = RunningMetrics(dataset.device)
    batches = dataset.batches(config.batch_size, np.random.default_rng([config.seed, epoch]))
    bar = tqdm(
        batches,
        desc=f"epoch {epoch + 1}/{config.epochs}",
        leave=False,
        disable=None if progress is None else not progress,
        dynamic_ncols=True,
    )
    shown = time.monotonic()
    for batch in bar:
        terms = loss_terms(model, batch)
        loss = weighted_loss(terms, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        finite = torch.isfinite(loss) & torch.isfinite(grad_norm)
        optimizer_step(optimizer, finite)
        if config.schedule == "cosine":
            scheduler.step()
        running.add(terms, loss, finite)
        if not bar.disable and time.monotonic() - shown >= POSTFIX_SECONDS:
            shown = time.monotonic()
            summary = running.summary()
            bar.set_postfix(
                loss=f"{summary['loss']:.4g}",
                E=f"{summary['energy_mae_meV_per_atom']:.1f}",
                F=f"{summary['force_mae_meV_per_A']:.0f}",
                lr=f"{optimizer.param_groups[0]['lr']:.2e}",
            )
    return running.summary()


def validation_metrics(model: StudentModel, dataset: GraphDataset, config: TrainConfig) -> dict:
    """Loss (as in training, but over the whole set) and MAEs and RMSEs on the validation set,
    predicted on the model's device (once per epoch: reading the results there is no per-step wait)."""
    model.eval()
    p = collect_predictions(model, dataset, batch_size=max(config.batch_size, 32))
    metrics = {**energy_errors(p.energy, p.energy_ref, p.n_atoms), **force_errors(p.forces, p.forces_ref)}
    del metrics["force_max_error_meV_per_A"]
    # the loss's mean squared errors are the squared RMSEs (eV^2 per atom^2, (eV/A)^2)
    loss = (
        config.energy_weight * (metrics["energy_rmse_meV_per_atom"] / 1e3) ** 2
        + config.force_weight * (metrics["force_rmse_meV_per_A"] / 1e3) ** 2
    )
    return {"loss": loss, **metrics}


def make_scheduler(optimizer, config: TrainConfig, batches_per_epoch: int):
    """Cosine: per-step linear warm-up then cosine decay to min_learning_rate at the last epoch.

    Plateau: ReduceLROnPlateau on the validation loss, stepped once per epoch.
    """
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=config.plateau_factor, patience=config.plateau_patience, min_lr=config.min_learning_rate
        )
    total = config.epochs * batches_per_epoch
    warmup = max(1, int(config.warmup_epochs * batches_per_epoch))
    floor = min(config.min_learning_rate, config.learning_rate) / config.learning_rate  # a floor, never a rise

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def structures_fingerprint(dataset: GraphDataset) -> str:
    """SHA-256 of the structures and labels of a data set, in order (what training sees)."""
    digest = hashlib.sha256()
    for atoms in dataset.structures:
        for array in (
            atoms.numbers,
            atoms.positions,
            atoms.cell.array,
            atoms.pbc,
            [atoms.get_potential_energy()],
            atoms.get_forces(),
        ):
            digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    return digest.hexdigest()


def data_fingerprint(train_set: GraphDataset, validation_set: GraphDataset) -> dict:
    """What a checkpoint records about its data, to refuse resuming on other data."""
    return {
        "train": structures_fingerprint(train_set),
        "validation": structures_fingerprint(validation_set),
        "n_train": len(train_set),
        "n_validation": len(validation_set),
    }


def on_cpu(value):
    """``value`` (tensors in dicts, lists and tuples) with every tensor copied to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: on_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(on_cpu(item) for item in value)
    return value


def save_checkpoint(
    path: Path, model, optimizer, scheduler, state: TrainState, config: TrainConfig, data: dict
) -> None:
    """Write whole or not at all (``files.atomic_path``): an interrupted write leaves the old one.
    Every tensor is saved on the CPU, so the file loads on any machine."""
    payload = on_cpu(
        {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "architecture": architecture_name(model),
            "model_config": model.config.to_dict(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "train_config": asdict(config),
            "data": data,
            "state": asdict(state),
        }
    )
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


def restart_fix(path: Path) -> str:
    return f"delete {path} (or choose another --checkpoint) to start afresh"


def read_checkpoint(path: Path) -> dict:
    """The contents of a checkpoint file; ValueError when it is damaged or not a checkpoint."""
    fix = f"{restart_fix(path)}, or point to the right checkpoint"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, random bytes, pickle errors: all mean "damaged"
        raise ValueError(f"checkpoint {path} is damaged or not a torch file ({type(exc).__name__}); {fix}") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an mlff-distiller training checkpoint; {fix}")
    if payload.get("format_version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"checkpoint {path} has format version {payload.get('format_version')}, "
            f"this mlff-distiller reads {CHECKPOINT_VERSION}; {fix}"
        )
    missing = CHECKPOINT_KEYS - payload.keys()
    if missing:
        raise ValueError(f"checkpoint {path} is damaged: it lacks {sorted(missing)}; {fix}")
    return payload


def check_same_model_and_data(path: Path, payload: dict, model, data: dict) -> None:
    """ValueError unless the checkpoint was written for this architecture and these data."""
    saved = payload.get("architecture", DEFAULT_ARCHITECTURE)  # checkpoints without the key are PaiNN's
    if (saved, payload["model_config"]) != (architecture_name(model), model.config.to_dict()):
        raise ValueError(
            f"checkpoint {path} is for the {saved} model {payload['model_config']}, not the "
            f"{architecture_name(model)} model {model.config.to_dict()}; use the same model settings or "
            f"{restart_fix(path)}"
        )
    then = payload["data"]
    if (then["train"], then["validation"]) != (data["train"], data["validation"]):
        raise ValueError(
            f"checkpoint {path} was written while training on other data ({then['n_train']} training and "
            f"{then['n_validation']} validation structures then, {data['n_train']} and "
            f"{data['n_validation']} now, with different contents): the data file or its split "
            f"(--validation-fraction, --group-by, --seed) changed. Resume with the same data and split, "
            f"or {restart_fix(path)}"
        )


def check_same_settings(path: Path, payload: dict, config: TrainConfig, log: Callable[[str], None]) -> None:
    """ValueError if an optimisation setting differs from the checkpoint's; a changed stopping
    setting (epochs, patience, time limit) or device is allowed, and said."""
    # checkpoints from before the device setting were written on the CPU
    then, now = {"device": "cpu", **payload["train_config"]}, asdict(config)
    changed = {key for key in now if then.get(key) != now[key]}
    fixed = sorted(changed - set(RESUME_MAY_CHANGE))
    if fixed:
        raise ValueError(
            f"checkpoint {path} was written with other settings: "
            + ", ".join(f"{key} {then.get(key)!r} then, {now[key]!r} now" for key in fixed)
            + f". Resume with the checkpoint's settings, or {restart_fix(path)}"
        )
    for key in sorted(changed):
        log(f"note: {key} is {now[key]!r} now, {then[key]!r} in checkpoint {path}; continuing with {now[key]!r}")
    if "epochs" in changed and config.schedule == "cosine":
        log(
            "note: the cosine learning-rate schedule is recomputed for the new number of epochs, so the "
            "learning rate jumps to that curve and the result differs from one uninterrupted run"
        )


def load_checkpoint(
    path: Path, model, optimizer, scheduler, config: TrainConfig, data: dict, log: Callable[[str], None] = print
) -> TrainState:
    """Restore model, optimizer and scheduler in place; return the training state.

    ValueError when the file is damaged, not a checkpoint, or from another run: another
    architecture, other data (``data`` from `data_fingerprint`) or other optimisation settings.
    """
    payload = read_checkpoint(path)
    check_same_model_and_data(path, payload, model, data)
    check_same_settings(path, payload, config, log)
    try:
        model.load_state_dict(payload["model"])
        load_optimizer_state(optimizer, payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        return TrainState(**payload["state"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"checkpoint {path} is damaged: {exc}; {restart_fix(path)}") from exc


def load_optimizer_state(optimizer: torch.optim.Adam, saved: dict) -> None:
    """Restore an Adam state written on any device with either kernel: the state moves to the
    parameters' device, and the kernel stays the one this run chose (``load_state_dict`` would take
    the saved one), with its step counts where that kernel keeps them (fused: float32 on the
    parameters' device; default: on the CPU)."""
    optimizer.load_state_dict(saved)
    fused = optimizer.defaults["fused"]
    for group in optimizer.param_groups:
        group["fused"] = fused
        for parameter in group["params"]:
            state = optimizer.state.get(parameter, {})
            if "step" in state:
                step = state["step"]
                state["step"] = step.to(parameter.device, torch.float32) if fused else step.to("cpu")


def check_checkpoint_use(checkpoint: Path | None, resume: bool) -> None:
    """ValueError for --resume without a checkpoint, and for a fresh run over an existing one."""
    if resume and checkpoint is None:
        raise ValueError(
            "--resume continues from a checkpoint, but none was given: add --checkpoint FILE "
            "(the file the interrupted run wrote), or leave out --resume to start afresh"
        )
    if not resume and checkpoint is not None and checkpoint.exists():
        raise ValueError(
            f"checkpoint {checkpoint} already exists, from an earlier run, and a fresh run would "
            f"overwrite it: add --resume to continue that run, or {restart_fix(checkpoint)}"
        )


# ----------------------------------------------------------------------------------------------
# The training loop
# ----------------------------------------------------------------------------------------------
def train(
    model: StudentModel,
    train_set: GraphDataset,
    validation_set: GraphDataset,
    config: TrainConfig,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] = print,
) -> TrainState:
    """Train ``model`` in place; on return it holds the weights of the best validation epoch.

    checkpoint: written after every epoch; with ``resume`` and an existing file, training
        continues from it (same data, config and seed give the same result as one run).
        ValueError if it exists without ``resume``, if ``resume`` comes without it, or if it
        belongs to another run (model, data or optimisation settings); see `load_checkpoint`.
    progress: tqdm bar per epoch (None: only on a terminal).
    The model is moved to ``config.device`` (and dtype) and stays there; the data sets are used
    there (`GraphDataset.to`: a copy if they live elsewhere, made once).
    Returns the final TrainState (history of per-epoch metrics, best epoch and loss).
    """
    device = torch_device(config.device)
    if len(train_set) == 0 or len(validation_set) == 0:
        raise ValueError(
            f"need structures for both training ({len(train_set)}) and validation "
            f"({len(validation_set)}): use a larger data set or another validation fraction"
        )
    checkpoint = Path(checkpoint) if checkpoint else None
    check_checkpoint_use(checkpoint, resume)
    model.to(device=device, dtype=DTYPES[config.dtype]).requires_grad_(True)
    train_set, validation_set = train_set.to(device), validation_set.to(device)
    optimizer = make_optimizer(model, config, device)
    scheduler = make_scheduler(optimizer, config, math.ceil(len(train_set) / config.batch_size))
    data = data_fingerprint(train_set, validation_set)
    state = TrainState()
    if resume and checkpoint.exists():
        state = load_checkpoint(checkpoint, model, optimizer, scheduler, config, data, log)
        log(
            f"resumed from {checkpoint} after epoch {state.epoch} (best validation loss "
            f"{state.best_loss:.4g} at epoch {state.best_epoch})"
        )
    elif resume:
        log(
            f"note: --resume, but there is no checkpoint {checkpoint} yet: training starts from scratch "
            "and writes it after every epoch"
        )
    for epoch in range(state.epoch, config.epochs):
        if stop_reason(state, config):
            break
        start = time.perf_counter()
        train_metrics = train_one_epoch(model, optimizer, scheduler, train_set, config, epoch, progress)
        val = validation_metrics(model, validation_set, config)
        if config.schedule == "plateau":
            scheduler.step(val["loss"])
        record_epoch(
            state, model, epoch, train_metrics, val, optimizer.param_groups[0]["lr"], time.perf_counter() - start
        )
        if checkpoint:
            save_checkpoint(checkpoint, model, optimizer, scheduler, state, config, data)
        log(epoch_line(state.history[-1], config))
    reason = stop_reason(state, config) or "all epochs done"
    log(
        f"stopped after epoch {state.epoch} ({reason}); best validation loss {state.best_loss:.4g} "
        f"at epoch {state.best_epoch}"
    )
    if state.best_model is not None:
        model.load_state_dict(state.best_model)
    model.eval()
    return state


def record_epoch(
    state: TrainState, model, epoch: int, train_metrics: dict, val: dict, lr: float, seconds: float
) -> None:
    """Append the epoch to the history and keep a copy of the weights if it is the best so far."""
    state.epoch = epoch + 1
    state.elapsed_s += seconds
    state.history.append({"epoch": epoch + 1, "lr": lr, "seconds": seconds, "train": train_metrics, "validation": val})
    if val["loss"] < state.best_loss:
        state.best_loss, state.best_epoch, state.epochs_since_best = val["loss"], epoch + 1, 0
        # on the CPU: no GPU memory, and ready for the checkpoint
        state.best_model = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    else:
        state.epochs_since_best += 1


def stop_reason(state: TrainState, config: TrainConfig) -> str | None:
    if state.epochs_since_best >= config.early_stopping_patience:
        return f"no better validation loss for {state.epochs_since_best} epochs"
    if config.max_minutes is not None and state.elapsed_s >= 60 * config.max_minutes:
        return f"time limit of {config.max_minutes} minutes reached"
    return None


def epoch_line(entry: dict, config: TrainConfig) -> str:
    t, v = entry["train"], entry["validation"]
    return (
        f"epoch {entry['epoch']:4d}/{config.epochs}  lr {entry['lr']:.2e}  "
        f"train loss {t['loss']:.4g} E {t['energy_mae_meV_per_atom']:.2f} F {t['force_mae_meV_per_A']:.1f}  "
        f"val loss {v['loss']:.4g} E {v['energy_mae_meV_per_atom']:.2f} F {v['force_mae_meV_per_A']:.1f}  "
        f"(meV/atom, meV/A; {entry['seconds']:.1f} s)"
        + (f"  skipped {t['skipped_batches']} non-finite batches" if t.get("skipped_batches") else "")
    )


# ----------------------------------------------------------------------------------------------
# From files to a model file
# ----------------------------------------------------------------------------------------------
def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def training_metadata(
    data: str | Path, n_train: int, n_validation: int, config: TrainConfig, state: TrainState
) -> dict:
    """What goes into the model file about its training (plain types, for weights_only loading)."""
    best = state.history[state.best_epoch - 1]["validation"] if state.best_epoch else {}
    return {
        "training": {
            "data": Path(data).name,
            "data_sha256": file_sha256(data),
            "n_train": n_train,
            "n_validation": n_validation,
            "config": asdict(config),
            "epochs_run": state.epoch,
            "best_epoch": state.best_epoch,
            "validation": best,
            "wall_time_s": round(state.elapsed_s, 1),
        }
    }


def train_from_file(
    data: str | Path,
    output: str | Path,
    model_config: StudentConfig | None = None,
    config: TrainConfig | None = None,
    validation_fraction: float = 0.1,
    group_key: str | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool | None = None,
    log: Callable[[str], None] = print,
    initial_model: str | Path | None = None,
) -> tuple[StudentModel, TrainState]:
    """Read a labelled data set, split it, train, and save the best model to ``output``.

    model_config: the student to build (default ``STUDENT_DEFAULTS``); empty elements mean those
        in the data.
    initial_model: a model file whose weights training starts from (fine-tuning); its own
        config then replaces ``model_config``.
    """
    config = config or TrainConfig()
    model_config = model_config or STUDENT_DEFAULTS
    torch_device(config.device)  # this and the checkpoint's use: refused before the slow set-up
    check_checkpoint_use(Path(checkpoint) if checkpoint else None, resume)
    structures = read_structures(data)
    dtype = DTYPES[config.dtype]
    start = load_model(initial_model, dtype) if initial_model else None
    model_config = start.config if start else model_config
    if not model_config.elements:
        model_config = replace(model_config, elements=elements_in(structures))
    validation, training = split_structures(structures, [validation_fraction], config.seed, group_key)
    log(f"{len(training)} training and {len(validation)} validation structures; building neighbour lists")
    train_set = GraphDataset(training, model_config.elements, model_config.cutoff, dtype)
    validation_set = GraphDataset(validation, model_config.elements, model_config.cutoff, dtype)
    model = start or build_model(model_config, training, config.seed, dtype)
    state = train(model, train_set, validation_set, config, checkpoint, resume, progress, log)
    save_model(model, output, training_metadata(data, len(training), len(validation), config, state))
    log(f"model written to {output}")
    return model, state


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The student's options, with ``STUDENT_DEFAULTS``, for every command that builds one."""
    d = STUDENT_DEFAULTS
    model = parser.add_argument_group("model")
    model.add_argument(
        "--elements", nargs="+", help="elements of the model (default: those of the structures it learns from)"
    )
    model.add_argument("--features", type=int, default=d.n_features, help=f"default {d.n_features}")
    model.add_argument("--layers", type=int, default=d.n_layers, help=f"default {d.n_layers}")
    model.add_argument("--radial", type=int, default=d.n_radial, help=f"radial functions, default {d.n_radial}")
    model.add_argument("--cutoff", type=float, default=d.cutoff, help=f"A, default {d.cutoff}")
    model.add_argument(
        "--repulsion",
        action=argparse.BooleanOptionalAction,
        default=d.repulsion,
        help="a ZBL screened nuclear repulsion inside bonding distance, which the network learns the "
        f"teacher minus (default {'on' if d.repulsion else 'off'})",
    )
    model.add_argument(
        "--repulsion-reach",
        type=float,
        default=d.repulsion_reach,
        help="where the repulsion ends, as a fraction of the two atoms' covalent radii summed "
        f"(default {d.repulsion_reach}; 1.0 reaches into bonds, as the shipped default_v2 does)",
    )


def model_config_from_args(args: argparse.Namespace) -> PaiNNConfig:
    """The student asked for by the options of ``add_model_arguments``."""
    return PaiNNConfig(
        elements=args.elements or [],
        n_features=args.features,
        n_layers=args.layers,
        n_radial=args.radial,
        cutoff=args.cutoff,
        repulsion=args.repulsion,
        repulsion_reach=args.repulsion_reach,
    )


def run(args) -> int:
    torch.set_num_threads(args.threads)
    model_config = model_config_from_args(args)
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        min_learning_rate=args.min_lr,
        schedule=args.schedule,
        warmup_epochs=args.warmup_epochs,
        energy_weight=args.energy_weight,
        force_weight=args.force_weight,
        early_stopping_patience=args.patience,
        max_minutes=args.max_minutes,
        seed=args.seed,
        dtype=args.dtype,
        device=args.device,
    )
    train_from_file(
        args.data,
        args.output,
        model_config,
        config,
        args.validation_fraction,
        args.group_by,
        args.checkpoint,
        args.resume,
    )
    return 0


def register(subparsers) -> None:
    d = TrainConfig()
    parser = subparsers.add_parser(
        "train", help="train a student on a labelled data set", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("data", help="extended-XYZ file with teacher energies and forces")
    parser.add_argument("-o", "--output", required=True, help="model file to write (.pt)")
    add_model_arguments(parser)
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=int, default=d.epochs, help=f"default {d.epochs}")
    opt.add_argument("--batch-size", type=int, default=d.batch_size, help=f"structures, default {d.batch_size}")
    opt.add_argument("--lr", type=float, default=d.learning_rate, help=f"peak learning rate, default {d.learning_rate}")
    opt.add_argument("--min-lr", type=float, default=d.min_learning_rate, help=f"default {d.min_learning_rate}")
    opt.add_argument("--schedule", choices=SCHEDULES, default=d.schedule, help=f"default {d.schedule}")
    opt.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs, help=f"default {d.warmup_epochs}")
    opt.add_argument("--energy-weight", type=float, default=d.energy_weight, help=f"default {d.energy_weight}")
    opt.add_argument("--force-weight", type=float, default=d.force_weight, help=f"default {d.force_weight}")
    opt.add_argument(
        "--patience",
        type=int,
        default=d.early_stopping_patience,
        help=f"early stopping patience in epochs, default {d.early_stopping_patience}",
    )
    opt.add_argument("--max-minutes", type=float, help="stop after this much training time")
    opt.add_argument("--dtype", choices=sorted(DTYPES), default=d.dtype, help=f"default {d.dtype}")
    opt.add_argument("--seed", type=int, default=d.seed, help=f"default {d.seed}")
    data = parser.add_argument_group("data")
    data.add_argument("--validation-fraction", type=float, default=0.1, help="default 0.1")
    data.add_argument(
        "--group-by", metavar="KEY", help="split each group (info key, e.g. molecule) with the same validation fraction"
    )
    run_group = parser.add_argument_group("run")
    run_group.add_argument(
        "--checkpoint", help="checkpoint file written after every epoch (refused if it exists, unless --resume)"
    )
    run_group.add_argument(
        "--resume",
        action="store_true",
        help="continue from --checkpoint (same data and settings; --epochs, --patience, "
        "--max-minutes and --device may change); starts afresh if it does not exist yet",
    )
    run_group.add_argument(
        "--device",
        default=d.device,
        help=f"train on this device: cpu, cuda or cuda:N (default {d.device}); the model "
        "file and checkpoints load on any machine, and --resume may change it",
    )
    run_group.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1; more only help on cores nobody else uses)"
    )
    parser.set_defaults(func=run)
