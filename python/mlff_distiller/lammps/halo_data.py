"""The Python side of the plugin pair style `mliap/halo` (lammps_plugin/ in this repository).

The pair style loads the same exported file as `pair_style mliap unified FILE` and hands the model
a ``HaloData`` object in place of ML-IAP's data object: the same attributes the unified model reads
(nlocal, ntotal, nlistatoms, natomneigh, npairs, elems, pair_i, pair_j, rij, eflag, vflag; writable
eatoms and energy; update_pair_forces), over the pairs of the local atoms only, plus the halo
exchange of per-atom rows with the ghost atoms (other MPI ranks and periodic images alike):

    data.forward_exchange(src, dst, width)   dst = src, then every ghost row = its owner's row
    data.reverse_exchange(src, dst, width)   dst = src, then owner rows += their ghost rows and
                                             ghost rows = 0

src and dst are C-contiguous [ntotal, width] float64 or float32 numpy arrays (they may be the same
array). Both are collective over the MPI ranks: every rank, including ranks without atoms, must
make the same calls with the same width, in the same order.

The arrays are numpy views of the pair style's C++ buffers and are valid only during
``compute_forces``; the exchanges call back into C++ through ctypes.
"""
from __future__ import annotations

import ctypes
import pickle

import numpy as np

# int mlff_halo_exchange(void *pair, void *src, void *dst, long long nrows, int width, int dtype,
#                        int reverse)
_EXCHANGE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                             ctypes.c_longlong, ctypes.c_int, ctypes.c_int, ctypes.c_int)
_DTYPES = {np.dtype(np.float64): 0, np.dtype(np.float32): 1}
_EXCHANGE_ERRORS = {1: "the array does not have ntotal rows", 2: "width must be positive",
                    3: "unsupported dtype", 4: "null data pointer"}


def load_unified(path: str):
    """The ML-IAP unified object in ``path``, loaded as `pair_style mliap unified` does
    (torch.load for .pt/.pth names, pickle otherwise). Both execute code from the file."""
    path = str(path)
    if path.endswith((".pt", ".pth")):
        import torch

        return torch.load(path, weights_only=False)
    with open(path, "rb") as fh:
        return pickle.load(fh)


def connect(path: str, exchange_address: int, pair_address: int):
    """Called by the pair style's `pair_style` command: (model, data, element names, cutoff)."""
    model = load_unified(path)
    for name in ("element_types", "rcutfac", "compute_forces"):
        if getattr(model, name, None) is None:
            raise ValueError(f"{path}: {type(model).__name__} has no {name}; it is not an ML-IAP unified model")
    elements = [str(e) for e in model.element_types]
    return model, HaloData(exchange_address, pair_address), elements, 2.0 * float(model.rcutfac)


def _view(address: int, ctype, shape: tuple[int, ...]) -> np.ndarray:
    count = int(np.prod(shape))
    if count == 0 or not address:
        return np.zeros(shape, dtype=np.dtype(ctype))
    return np.ctypeslib.as_array(ctypes.cast(address, ctypes.POINTER(ctype)), shape)


class HaloData:
    """What `pair_style mliap/halo` hands to ``compute_forces`` (see the module doc)."""

    def __init__(self, exchange_address: int, pair_address: int):
        self._exchange = _EXCHANGE(exchange_address)
        self._pair = ctypes.c_void_p(pair_address)
        self._bind(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    def _bind(self, nlocal, ntotal, npairs, elems, pair_i, pair_j, rij, eatoms, fij, eflag, vflag):
        """Called by the pair style before each compute_forces with its buffers' addresses."""
        self.nlocal = self.nlistatoms = self.natomneigh = int(nlocal)
        self.ntotal = int(ntotal)
        self.npairs = int(npairs)
        self.eflag, self.vflag = int(eflag), int(vflag)
        self.elems = _view(elems, ctypes.c_int32, (self.ntotal,))
        self.pair_i = _view(pair_i, ctypes.c_int32, (self.npairs,))
        self.pair_j = _view(pair_j, ctypes.c_int32, (self.npairs,))
        self.rij = _view(rij, ctypes.c_double, (self.npairs, 3))
        self._eatoms = _view(eatoms, ctypes.c_double, (self.nlocal,))
        self._fij = _view(fij, ctypes.c_double, (self.npairs, 3))
        self.energy = 0.0

    # -- aliases ML-IAP's data object also has -----------------------------------------------
    @property
    def jatoms(self) -> np.ndarray:
        return self.pair_j

    @property
    def iatoms(self) -> np.ndarray:
        return np.arange(self.nlocal, dtype=np.int32)

    # -- outputs -------------------------------------------------------------------------------
    @property
    def eatoms(self) -> np.ndarray:
        return self._eatoms

    @eatoms.setter
    def eatoms(self, values) -> None:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        if values.shape != (self.nlocal,):
            raise ValueError(f"eatoms has {values.size} values for {self.nlocal} local atoms")
        self._eatoms[...] = values

    def update_pair_forces(self, fij) -> None:
        """fij [npairs,3] = dE/dr_ij: the pair style adds f_i += fij, f_j -= fij and the virial."""
        fij = np.asarray(fij, dtype=np.float64)
        if fij.shape != (self.npairs, 3):
            raise ValueError(f"fij has shape {fij.shape}, expected ({self.npairs}, 3)")
        self._fij[...] = fij

    def update_pair_energy(self, eij) -> None:
        """Pair energies, half to each local i (as ML-IAP's update_pair_energy)."""
        eij = np.asarray(eij, dtype=np.float64).reshape(-1)
        if eij.shape != (self.npairs,):
            raise ValueError(f"eij has {eij.size} values for {self.npairs} pairs")
        eatoms = np.zeros(self.nlocal)
        np.add.at(eatoms, self.pair_i, 0.5 * eij)
        self._eatoms[...] = eatoms
        self.energy = float(eatoms.sum())

    # -- halo exchange -------------------------------------------------------------------------
    def forward_exchange(self, src: np.ndarray, dst: np.ndarray, width: int) -> None:
        self._run_exchange(src, dst, width, reverse=0)

    def reverse_exchange(self, src: np.ndarray, dst: np.ndarray, width: int) -> None:
        self._run_exchange(src, dst, width, reverse=1)

    def _run_exchange(self, src, dst, width, reverse):
        width = int(width)
        for name, a in (("src", src), ("dst", dst)):
            if not isinstance(a, np.ndarray) or a.dtype not in _DTYPES or not a.flags.c_contiguous:
                raise TypeError(f"{name} must be a C-contiguous float64 or float32 numpy array")
            if a.size != self.ntotal * width or (a.ndim > 1 and a.shape[0] != self.ntotal):
                raise ValueError(f"{name} has shape {a.shape}, expected ({self.ntotal}, {width})")
        if src.dtype != dst.dtype:
            raise TypeError(f"src is {src.dtype} but dst is {dst.dtype}")
        if not dst.flags.writeable:
            raise ValueError("dst is read-only")
        status = self._exchange(self._pair, src.ctypes.data, dst.ctypes.data, self.ntotal, width,
                                _DTYPES[src.dtype], reverse)
        if status:
            raise RuntimeError(f"halo exchange failed: {_EXCHANGE_ERRORS.get(status, status)}")
