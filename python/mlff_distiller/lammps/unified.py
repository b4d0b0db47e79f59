"""The ML-IAP unified model: the student inside `pair_style mliap unified FILE` and `mliap/halo FILE`.

LAMMPS hands ``compute_forces(data)`` its neighbour pairs (``pair_i`` receives from ``pair_j``,
``rij = x_j - x_i``) and takes back per-atom energies and ``fij = dE/dr_ij``, from which it adds
forces (f_i += fij, f_j -= fij) and the virial. Each step reads as three parts: ``prepare_step``
(LAMMPS's arrays -> the model's atoms and edges), the model, and ``write_back``; they and the
smaller parts between them are ``timing`` sections, timed when ``MLFF_TIMING`` asks for it.

Two data objects arrive here. Stock ML-IAP's (a molecule or cluster on one rank: no message may
pass through a ghost atom) and our plugin's ``HaloData`` (lammps_plugin/, any box and any number
of ranks: ghost features come by a halo exchange after each layer).

The exported file is a pickle of this class holding only plain data (the model file's bytes, their
checksum and a few settings) and a format version checked on load, so a file from another
mlff-distiller version or a damaged one fails with a clear message. Reading one touches no device:
the runtime (this rank's device, the model there, its step runner) is built by the first step, or
by the plugin's `pair_style` (``halo_data.connect``), so `lammps-input` reads a CUDA export on a
machine without a GPU.
"""

from __future__ import annotations

import gc
import hashlib
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch

from .. import __version__
from ..model.io import load_model
from ..model.interface import StudentModel
from ..model.painn import DTYPES, METHODS
from ..model.replay import step_runner
from ..timing import section
from .checks import check_model_output, refuse_ghost_messages, refuse_ghost_neighbour_mode
from .device import check_device_request, claim_rank_device, local_rank, set_rank_threads, world_size
from .stock import StockLammps, abort_all_ranks

try:
    from lammps.mliap.mliap_unified_abc import MLIAPUnified
except ImportError:  # exporting or inspecting a model where LAMMPS is not installed

    class MLIAPUnified:
        """Stand-in with the constructor of LAMMPS's MLIAPUnified."""

        def __init__(self, interface=None, element_types=None, ndescriptors=None, nparams=None, rcutfac=None):
            self.interface, self.element_types = interface, element_types
            self.ndescriptors, self.nparams, self.rcutfac = ndescriptors, nparams, rcutfac


EXPORT_FORMAT = "mlff-distiller-mliap"
EXPORT_VERSION = 2
EXPORT_COMMAND = "mlff-distiller export MODEL -o FILE.mliap"


class Runtime(NamedTuple):
    """What the steps run with, built on the rank that runs them (``start_runtime``)."""

    device: str  # this rank's device, e.g. "cuda:1"
    model: StudentModel  # on that device, in the export's dtype
    run_model: Callable  # the per-step call (``replay.step_runner``)


class ModelSummary(NamedTuple):
    """What an export needs to know of its model before running it, as plain data."""

    elements: list[str]
    cutoff: float  # A
    n_message_passes: int


class StudentUnified(MLIAPUnified):
    """A student model as an ML-IAP unified model.

    method: "analytic" (hand-written backward) or "autograd" (reference);
    dtype: "float64" or "float32" (inputs and outputs stay float64 on the LAMMPS side);
    device: "cpu", "cuda" (each rank its GPU, see ``device.py``) or "cuda:N". The model's arrays
    cross to the device and back once per step each way.
    """

    def __init__(self, model_file_bytes: bytes, method: str = "analytic", dtype: str = "float64", device: str = "cpu"):
        self.__setstate__(export_state(model_file_bytes, method, dtype, device))

    # -- pickling: plain data only -----------------------------------------------------------
    def __getstate__(self):
        return export_state(self.model_file_bytes, self.method, self.dtype_name, self.device_request)

    def __setstate__(self, state):
        """Check and keep the plain data, and what ML-IAP reads when it loads a model (elements,
        cutoff): no device is touched and nothing runs until ``runtime``."""
        check_export_state(state)
        self.summary = model_summary(state["model"])
        super().__init__(
            element_types=list(self.summary.elements), ndescriptors=1, nparams=1, rcutfac=0.5 * self.summary.cutoff
        )
        self.model_file_bytes = state["model"]
        self.method = state["method"]
        self.dtype_name = state["dtype"]
        self.device_request = state["device"]
        self._runtime = None

    def runtime(self) -> Runtime:
        """This rank's device, the model there and its step runner: built by the first call (the
        first step, or the plugin's `pair_style`), kept for the next ones."""
        if self._runtime is None:
            self._runtime = start_runtime(self.model_file_bytes, self.method, self.dtype_name, self.device_request)
        return self._runtime

    # -- the ML-IAP interface ----------------------------------------------------------------
    def compute_descriptors(self, data):
        pass

    def compute_gradients(self, data):
        pass

    def compute_forces(self, data):
        if is_plugin_data(data):  # the plugin stops every rank itself when this raises
            self._step(data, data.tag.__getitem__, halo=True)
            return
        lmp = StockLammps(data)
        try:
            lmp.check_settings()
            if data.natomneigh > data.nlistatoms:
                refuse_ghost_neighbour_mode()
            self._step(data, lambda index: lmp.atom_ids(data.ntotal)[index], halo=False)
        except Exception as exc:
            rank, size = lmp.rank_and_size()
            if size == 1:
                raise  # LAMMPS stops with the traceback
            abort_all_ranks(f"mlff-distiller: {type(exc).__name__}: {exc}", rank)

    def _step(self, data, atom_ids, halo: bool) -> None:
        """One step in its parts, each a ``timing.section`` (timed when timing is on)."""
        device, _, run_model = self.runtime()  # before any early return: every rank finds its device
        with section("prepare_step"):
            step = prepare_step(data, self.summary.n_message_passes, halo)
        if step.slots.size == 0 and not halo:  # nothing to compute (halo mode must still join the exchanges)
            with section("write_back"):
                write_back(data, step, np.zeros(0), np.zeros((0, 3)), halo)
            return
        with section("to_device"):
            inputs = (
                self._tensor(step.species, device),
                self._tensor(step.edge_i, device),
                self._tensor(step.edge_j, device),
                self._tensor(step.r_ij, device, DTYPES[self.dtype_name]),
            )
        step_halo = data.halo(step.atoms, step.position, device) if halo else None  # section "halo"
        try:
            # not inference_mode: the autograd export must still build a graph
            with torch.no_grad(), section("model"):
                energies, grad = run_model(*inputs, n_counted=step.slots.size, halo=step_halo)
        except torch.cuda.OutOfMemoryError as exc:
            raise RuntimeError(
                f"{device} ran out of memory for {step.atoms.size} atoms and {step.edge_i.size} pairs on this rank: "
                f"use more MPI ranks or GPUs{', or a float32 export' if self.dtype_name == 'float64' else ''}"
            ) from exc
        energies, grad = energies.cpu().numpy(), grad.cpu().numpy()  # in the model's dtype: half the bytes in float32
        with section("check_model_output"):
            check_model_output(
                energies, grad, step.r_ij, step.edge_i, step.edge_j, lambda index: atom_ids(step.atoms[index])
            )
        with section("write_back"):
            write_back(data, step, energies, grad, halo)

    def _tensor(self, array: np.ndarray, device: str, dtype=torch.int64) -> torch.Tensor:
        # copy first, convert second: on a GPU the conversion then runs there, not on the host
        return torch.from_numpy(array).to(device).to(dtype)


def is_plugin_data(data) -> bool:
    """Whether ``data`` is our plugin's (``halo_data.HaloData``) rather than stock ML-IAP's: the
    one with halo exchanges. Asked by what it does, not by isinstance, because halo_data imports
    this module (``connect`` reads exports)."""
    return hasattr(data, "forward_exchange")


def export_state(model_file_bytes: bytes, method: str, dtype: str, device: str) -> dict:
    """What an export pickles: plain data and the format it is in."""
    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_VERSION,
        "package_version": __version__,
        "model": model_file_bytes,
        "model_sha256": hashlib.sha256(model_file_bytes).hexdigest(),
        "method": method,
        "dtype": dtype,
        "device": device,
    }


def model_summary(model_file_bytes: bytes) -> ModelSummary:
    """The model's elements, cutoff and message passes, from a load on the CPU that also checks
    the model file; the model itself is dropped, the runtime loads it on its device."""
    model = load_model(io.BytesIO(model_file_bytes))
    return ModelSummary(model.elements, model.cutoff, model.n_message_passes)


def start_runtime(model_file_bytes: bytes, method: str, dtype: str, device_request: str) -> Runtime:
    """The model on this rank's device (``device.py``: raises DeviceError when the rank has none
    it can use), its threads and its step runner."""
    set_rank_threads()
    device = claim_rank_device(device_request)
    if device.startswith("cuda"):
        print(
            f"mlff-distiller: local rank {local_rank()} of {world_size()} runs the model on {device} "
            f"({torch.cuda.get_device_name(device)})",
            flush=True,
        )
    model = load_model(io.BytesIO(model_file_bytes), DTYPES[dtype]).to(device)
    runtime = Runtime(device, model, step_runner(model, method))
    # Every step makes a few Python objects, and Python's full collections would walk all of
    # torch's each time (4% of a step of 8,232 waters): what exists now is kept out of them.
    gc.freeze()
    return runtime


def read_export(path: str | Path) -> StudentUnified:
    """An exported file, or a one-line ValueError that says what the file is and what to run."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
            fh.seek(0)
            if head.startswith(b"PK"):  # torch.save writes zip archives
                raise ValueError(
                    f"{path} is a model file (torch), not a LAMMPS export: run "
                    f"`mlff-distiller export {path} -o {path.with_suffix('.mliap').name}`"
                )
            unified = pickle.load(fh)
    except ValueError:  # already says what is wrong
        raise
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # unpickling a damaged or foreign file raises many kinds
        raise ValueError(
            f"{path} is not a readable mlff-distiller LAMMPS export (damaged or another format: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); write one with "
            f"`{EXPORT_COMMAND}`"
        ) from exc
    if not isinstance(unified, StudentUnified):
        raise ValueError(
            f"{path} holds a {type(unified).__name__}, not an mlff-distiller LAMMPS export; write one "
            f"with `{EXPORT_COMMAND}`"
        )
    return unified


def check_export_state(state) -> None:
    """Refuse exports that are not ours, from another format version, or damaged."""
    if not isinstance(state, dict) or state.get("format") != EXPORT_FORMAT:
        raise ValueError(f"this file is not an mlff-distiller LAMMPS export: write one with `{EXPORT_COMMAND}`")
    if state.get("format_version") != EXPORT_VERSION:
        raise ValueError(
            f"this LAMMPS model file has export format {state.get('format_version')} (written by mlff-distiller "
            f"{state.get('package_version')}); the installed mlff-distiller {__version__} reads format "
            f"{EXPORT_VERSION}: re-export it with `{EXPORT_COMMAND}`"
        )
    if hashlib.sha256(state.get("model", b"")).hexdigest() != state.get("model_sha256"):
        raise ValueError(
            "this LAMMPS model file is damaged (its model bytes fail their sha256 checksum): "
            f"re-export it with `{EXPORT_COMMAND}`"
        )
    if state.get("method") not in METHODS or state.get("dtype") not in DTYPES:
        raise ValueError(
            f"bad export settings method={state.get('method')!r} dtype={state.get('dtype')!r}: "
            f"use one of {METHODS} and {tuple(DTYPES)}"
        )
    check_device_request(str(state.get("device")))


@dataclass
class Step:
    """One call of the model, in its own numbering: rows are ``atoms`` (LAMMPS indices, the
    counted atoms first, in the order of LAMMPS's list), edges are LAMMPS's ``pairs``."""

    atoms: np.ndarray  # [N] LAMMPS index of each model atom
    position: np.ndarray  # [ntotal] model row of each LAMMPS atom, -1 for those left out
    slots: np.ndarray  # [n_counted] slot of each counted atom in LAMMPS's per-atom energies
    pairs: np.ndarray | slice  # the LAMMPS pairs the model sees (both ends non-NULL)
    species: np.ndarray  # [N] integer
    edge_i: np.ndarray  # [E] integer, receivers
    edge_j: np.ndarray  # [E] integer, senders
    r_ij: np.ndarray  # [E,3] float64


_NO_PAIRS = np.zeros(0, dtype=np.int32)


def prepare_step(data, n_layers: int, halo: bool) -> Step:
    """LAMMPS's arrays -> the model's atoms and edges, NULL types left out.

    Counted atoms are those of LAMMPS's list; senders are the other atoms (ghosts) that send to
    them. Without a halo a message through a ghost cannot be exact, so a model of several layers
    refuses ghosts that send."""
    elems = np.asarray(data.elems)
    if halo and data.npairs and elems.min() >= 0:
        return every_atom_step(data, elems)
    listed = np.asarray(data.iatoms)[: data.nlistatoms] if data.nlistatoms else _NO_PAIRS
    slots = np.flatnonzero(elems[listed] >= 0)
    counted = listed[slots]
    # stock ML-IAP cannot build its arrays when a rank has no pairs: do not touch them
    pair_i = np.asarray(data.pair_i) if data.npairs else _NO_PAIRS
    pair_j = np.asarray(data.pair_j) if data.npairs else _NO_PAIRS
    r_ij = np.asarray(data.rij) if data.npairs else np.zeros((0, 3))

    is_sender = np.bincount(pair_j, minlength=elems.size) > 0  # faster than a scatter of True
    is_sender &= elems >= 0
    is_sender[counted] = False
    senders = np.flatnonzero(is_sender)
    if senders.size and not halo and n_layers > 1:
        refuse_ghost_messages(n_layers)
    atoms = np.concatenate((counted, senders))

    position = np.full(elems.size, -1, dtype=np.int64)
    position[atoms] = np.arange(atoms.size)
    edge_i, edge_j = position[pair_i], position[pair_j]
    valid = (edge_i >= 0) & (edge_j >= 0)
    pairs = slice(None) if valid.all() else valid
    return Step(atoms, position, slots, pairs, elems[atoms], edge_i[pairs], edge_j[pairs], r_ij[pairs])


def every_atom_step(data, elems: np.ndarray) -> Step:
    """The plugin's step when no atom is of a NULL type: its atoms come locals first, so every
    LAMMPS atom is a model row in LAMMPS's order and its pairs are the edges as they are. Ghosts
    that send nothing are rows without edges, which costs the model less than leaving them out
    costs here."""
    atoms = np.arange(elems.size)
    return Step(
        atoms,
        atoms,
        np.arange(data.nlistatoms),
        slice(None),
        elems,
        np.asarray(data.pair_i),
        np.asarray(data.pair_j),
        np.asarray(data.rij),
    )


def write_back(data, step: Step, energies: np.ndarray, grad: np.ndarray, halo: bool) -> None:
    """Per-atom energies [n_counted] and dE/dr_ij [E,3] (float32 or float64) into LAMMPS's data
    object. Stock ML-IAP takes float64 only; the plugin's data (``halo``) converts as it copies."""
    if data.nlistatoms:
        eatoms = np.zeros(data.nlistatoms)
        eatoms[step.slots] = energies
        data.eatoms = eatoms
    data.energy = float(energies.sum(dtype=np.float64))
    if data.npairs:
        if isinstance(step.pairs, slice):  # the model saw every pair: its gradient is fij as it is
            data.update_pair_forces(grad if halo else np.ascontiguousarray(grad, np.float64))
        else:
            fij = np.zeros((data.npairs, 3))
            fij[step.pairs] = grad
            data.update_pair_forces(fij)
