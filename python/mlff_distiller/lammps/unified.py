"""The ML-IAP unified model: the student inside `pair_style mliap unified FILE [1]`.

LAMMPS hands ``compute_forces(data)`` its neighbour pairs (``pair_i`` receives from ``pair_j``,
``rij = x_j - x_i``) and takes back per-atom energies and ``fij = dE/dr_ij``, from which it adds
forces (f_i += fij, f_j -= fij) and the virial. The same object is driven by our plugin's pair
style `mliap/halo` (lammps_plugin/, data object in ``halo_data.py``), which provides the same attributes
over the pairs of local atoms only, plus a per-layer halo exchange with the ghost atoms.

The exported file is a pickle of this class holding only plain data (the model file's bytes and a
few settings) and a format version checked on load, so a file from another mlff-distiller version
fails with a clear message instead of a confusing unpickling error.
"""
from __future__ import annotations

import io

import numpy as np
import torch

from .. import __version__
from ..model.io import load_model
from ..model.halo import Halo
from .ghosts import check_message_passing_is_exact

try:
    from lammps.mliap.mliap_unified_abc import MLIAPUnified
except ImportError:  # building or inspecting an export without LAMMPS installed
    MLIAPUnified = object

EXPORT_FORMAT = "mlff-distiller-mliap"
EXPORT_VERSION = 1


class StudentUnified(MLIAPUnified):
    """A student model as an ML-IAP unified model.

    method: "analytic" (hand-written backward) or "autograd" (reference);
    dtype: "float64" or "float32" (inputs and outputs stay float64 on the LAMMPS side).
    """

    def __init__(self, model_file_bytes: bytes, method: str = "analytic", dtype: str = "float64",
                 device: str = "cpu"):
        self.__setstate__({"format": EXPORT_FORMAT, "format_version": EXPORT_VERSION,
                           "package_version": __version__, "model": model_file_bytes,
                           "method": method, "dtype": dtype, "device": device})

    # -- pickling: plain data only -----------------------------------------------------------
    def __getstate__(self):
        return {"format": EXPORT_FORMAT, "format_version": EXPORT_VERSION, "package_version": __version__,
                "model": self.model_file_bytes, "method": self.method, "dtype": self.dtype_name,
                "device": self.device}

    def __setstate__(self, state):
        if not isinstance(state, dict) or state.get("format") != EXPORT_FORMAT:
            raise ValueError("this file is not an mlff-distiller LAMMPS export")
        if state.get("format_version") != EXPORT_VERSION:
            raise ValueError(
                f"this LAMMPS model file has export format {state.get('format_version')} (written by mlff-distiller "
                f"{state.get('package_version')}); the installed mlff-distiller {__version__} reads format "
                f"{EXPORT_VERSION}: re-export it with `mlff-distiller export`")
        if state["method"] not in ("analytic", "autograd") or state["dtype"] not in ("float64", "float32"):
            raise ValueError(f"bad export settings method={state['method']!r} dtype={state['dtype']!r}")
        self.model_file_bytes = state["model"]
        self.method = state["method"]
        self.dtype_name = state["dtype"]
        self.device = state["device"]
        self.model = load_model(io.BytesIO(self.model_file_bytes), getattr(torch, self.dtype_name)).to(self.device)
        elements = self.model.elements
        if MLIAPUnified is not object:
            super().__init__(element_types=elements, ndescriptors=1, nparams=1, rcutfac=0.5 * self.model.cutoff)
        else:
            self.element_types, self.ndescriptors, self.nparams = elements, 1, 1
            self.rcutfac = 0.5 * self.model.cutoff

    # -- the ML-IAP interface ----------------------------------------------------------------
    def compute_descriptors(self, data):
        pass

    def compute_gradients(self, data):
        pass

    def compute_forces(self, data):
        pair_i, pair_j, elems = np.asarray(data.pair_i), np.asarray(data.pair_j), np.asarray(data.elems)
        halo_mode = hasattr(data, "forward_exchange")  # the mliap/halo plugin: exact without ghost lists
        if halo_mode:
            atoms, pairs = halo_atoms_and_pairs(elems, pair_i, pair_j, data.nlocal)
        else:
            check_message_passing_is_exact(data, self.model.config.n_layers, self.model.cutoff, pair_j)
            atoms, pairs = real_atoms_and_pairs(elems, pair_i, pair_j)
        n_counted = int(np.count_nonzero(atoms < data.nlocal))  # local atoms come first
        with torch.no_grad():  # not inference_mode: the autograd export must still build a graph
            energies, grad = self.model.energies_and_edge_gradients(
                self._tensor(elems[atoms].astype(np.int64)),
                self._tensor(pair_index(atoms, pair_i[pairs])), self._tensor(pair_index(atoms, pair_j[pairs])),
                self._tensor(np.asarray(data.rij)[pairs], self.model.embedding.weight.dtype),
                n_counted=n_counted, method=self.method,
                halo=halo_from_data(data, atoms) if halo_mode else None)
        eatoms = np.zeros(data.nlistatoms)
        eatoms[atoms[:n_counted]] = energies.double().cpu().numpy()
        data.eatoms = eatoms
        data.energy = float(eatoms.sum())
        if len(pair_i):
            fij = np.zeros((len(pair_i), 3))
            fij[pairs] = grad.double().cpu().numpy()
            data.update_pair_forces(fij)

    def _tensor(self, array: np.ndarray, dtype=None) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device, dtype)


def halo_from_data(data, atoms: np.ndarray) -> Halo:
    """The model's halo exchange through the plugin's data.forward_exchange / reverse_exchange.

    The model's rows are those of ``atoms`` (a sorted subset of the LAMMPS atoms, see
    ``halo_atoms_and_pairs``); the exchange works on all ntotal LAMMPS atoms, so rows are scattered
    into a full array around it. Rows left out start at zero, which is exact: forward, every ghost
    row is overwritten from its owner (chains through other ghosts included); reverse, zero adds
    nothing. Every rank makes the same calls (the exchanges are collective)."""
    ntotal = int(data.ntotal)
    every_atom = len(atoms) == ntotal

    def exchange(move):
        def run(rows: torch.Tensor) -> torch.Tensor:
            width = rows.shape[1]
            if every_atom:
                out = rows.detach().to("cpu", copy=True).contiguous()
            else:
                out = rows.new_zeros((ntotal, width), device="cpu")
                out[torch.from_numpy(atoms)] = rows.detach().cpu()
            array = out.numpy()
            move(array, array, width)
            if not every_atom:
                out = out[torch.from_numpy(atoms)]
            return out.to(rows.device)
        return run

    return Halo(exchange(data.forward_exchange), exchange(data.reverse_exchange))


def halo_atoms_and_pairs(elems: np.ndarray, pair_i: np.ndarray, pair_j: np.ndarray, nlocal: int):
    """Halo mode: the local atoms and the ghosts that send to them (in order, locals first), and
    the pairs between them, NULL types left out. The other ghosts (the neighbour skin, the
    far side of the ghost shell) send nothing: leaving them out of the model saves its per-atom
    work, and the exchange fills the rows of those it needs in transit."""
    needed = np.zeros(elems.size, dtype=bool)
    needed[:nlocal] = True
    needed[pair_j] = True
    needed &= elems >= 0
    pairs = needed[pair_i] & needed[pair_j]
    return np.flatnonzero(needed), slice(None) if pairs.all() else pairs


def real_atoms_and_pairs(elems: np.ndarray, pair_i: np.ndarray, pair_j: np.ndarray):
    """Atoms of a NULL type (elems == -1) take no part: indices of the other atoms (in order, so
    local atoms stay first) and the mask (or slice) of pairs between them."""
    if elems.size == 0 or elems.min() >= 0:
        return np.arange(elems.size), slice(None)
    real = elems >= 0
    return np.flatnonzero(real), real[pair_i] & real[pair_j]


def pair_index(atoms: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Atom indices of LAMMPS's numbering -> positions in ``atoms`` (sorted)."""
    if len(atoms) == 0 or atoms[-1] == len(atoms) - 1:  # nothing dropped: the identity
        return index.astype(np.int64)
    return np.searchsorted(atoms, index).astype(np.int64)
