"""The Python side of the plugin pair style `mliap/halo` (lammps_plugin/ in this repository).

The pair style loads the same exported file as `pair_style mliap unified FILE` and hands the model
a ``HaloData`` object in place of ML-IAP's data object: the attributes the unified model reads
(nlocal, ntotal, nlistatoms, natomneigh, npairs, elems, iatoms, pair_i, pair_j, rij, eflag, vflag;
writable eatoms and energy; update_pair_forces), over the pairs of the local atoms only, plus the
halo exchange of per-atom rows with the ghost atoms (other MPI ranks and periodic images alike):

    data.forward_exchange(src, dst, width)   dst = src, then every ghost row = its owner's row
    data.reverse_exchange(src, dst, width)   dst = src, then owner rows += their ghost rows and
                                             ghost rows = 0

src and dst are C-contiguous [ntotal, width] float64 or float32 numpy arrays (they may be the same
array). Both are collective over the MPI ranks: every rank, including ranks without atoms, must
make the same calls with the same width, in the same order.

The arrays are numpy views of the pair style's C++ buffers and are valid only during
``compute_forces``; the exchanges call back into C++ through ctypes.

The contract with the C++ side (the arguments of ``_bind``, the dtype and status codes) is
defined here, and in ``lammps_plugin/halo_protocol.h`` for C++; at `pair_style` time the plugin
passes its signature of that contract to ``connect``, which refuses a plugin that differs.
"""

from __future__ import annotations

import ctypes

import numpy as np
import torch

from ..model.halo import GatherHalo, Halo
from ..timing import section
from .unified import read_export

PROTOCOL_VERSION = 2
# The arguments of HaloData._bind, in order, as Python's C API formats them ("i" int, "K" address)
BIND_FORMAT = {
    "nlocal": "i",
    "ntotal": "i",
    "npairs": "i",
    "elems": "K",
    "pair_i": "K",
    "pair_j": "K",
    "tag": "K",
    "owner": "K",
    "rij": "K",
    "eatoms": "K",
    "fij": "K",
    "eflag": "i",
    "vflag": "i",
}
DTYPE_CODES = {"float64": 0, "float32": 1}
EXCHANGE_ERRORS = {
    1: "the array does not have ntotal rows",
    2: "width must be positive",
    3: "unsupported dtype",
    4: "null data pointer",
}
# int mlff_halo_exchange(void *pair, void *src, void *dst, long long nrows, int width, int dtype, int reverse)
_EXCHANGE = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_longlong,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
)


def protocol_signature() -> str:
    """This side's contract, in the form halo_protocol.h builds for C++."""
    bind = "".join(BIND_FORMAT.values()) + ":" + ",".join(BIND_FORMAT)
    dtypes = ",".join(f"{k}={v}" for k, v in DTYPE_CODES.items())
    status = ",".join(str(k) for k in EXCHANGE_ERRORS)
    return f"mlff-halo/{PROTOCOL_VERSION} bind({bind}) dtype({dtypes}) status({status})"


def connect(path: str, exchange_address: int, pair_address: int, plugin_signature: str, tag_bytes: int):
    """Called by the pair style's `pair_style` command: (model, data, element names, cutoff)."""
    if plugin_signature != protocol_signature():
        raise RuntimeError(
            f"the mliap/halo plugin speaks {plugin_signature!r} but the installed mlff_distiller speaks "
            f"{protocol_signature()!r}: rebuild the plugin from the same source (`make setup`)"
        )
    model = read_export(path)
    # this rank's device now: the plugin stops every rank alike when connect raises, whereas a
    # failure in a step stops the run from the rank that failed
    model.runtime()
    elements = [str(e) for e in model.element_types]
    return model, HaloData(exchange_address, pair_address, tag_bytes), elements, 2.0 * float(model.rcutfac)


class _Buffer:
    """A C++ buffer as numpy sees it (the array interface): no copy, and far cheaper per step
    than building ctypes array types."""

    def __init__(self, address: int, dtype: np.dtype, shape: tuple[int, ...]):
        self.__array_interface__ = {"data": (address, False), "shape": shape, "typestr": dtype.str, "version": 3}


def _view(address: int, ctype, shape: tuple[int, ...]) -> np.ndarray:
    dtype = np.dtype(ctype)
    if not address or 0 in shape:
        return np.zeros(shape, dtype=dtype)
    return np.asarray(_Buffer(address, dtype, shape))


class HaloData:
    """What `pair_style mliap/halo` hands to ``compute_forces`` (see the module doc)."""

    def __init__(self, exchange_address: int, pair_address: int, tag_bytes: int = 4):
        self._exchange = _EXCHANGE(exchange_address)
        self._pair = ctypes.c_void_p(pair_address)
        self._tag_type = ctypes.c_int64 if tag_bytes == 8 else ctypes.c_int32
        self._bind(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    def _bind(self, nlocal, ntotal, npairs, elems, pair_i, pair_j, tag, owner, rij, eatoms, fij, eflag, vflag):
        """Called by the pair style before each compute_forces with its buffers' addresses."""
        self.nlocal = self.nlistatoms = self.natomneigh = int(nlocal)
        self.ntotal = int(ntotal)
        self.npairs = int(npairs)
        self.eflag, self.vflag = int(eflag), int(vflag)
        self.elems = _view(elems, ctypes.c_int32, (self.ntotal,))
        self.pair_i = _view(pair_i, ctypes.c_int32, (self.npairs,))
        self.pair_j = _view(pair_j, ctypes.c_int32, (self.npairs,))
        self.tag = _view(tag, self._tag_type, (self.ntotal,))
        # on one rank, the local owner of each atom (see halo()); None on several ranks
        self.owner = _view(owner, ctypes.c_int32, (self.ntotal,)) if owner else None
        self.rij = _view(rij, ctypes.c_double, (self.npairs, 3))
        self._eatoms = _view(eatoms, ctypes.c_double, (self.nlocal,))
        self._fij = _view(fij, ctypes.c_double, (self.npairs, 3))
        self.iatoms = np.arange(self.nlocal, dtype=np.int32)
        self.energy = 0.0

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
        fij = np.asarray(fij)
        if fij.shape != (self.npairs, 3):
            raise ValueError(f"fij has shape {fij.shape}, expected ({self.npairs}, 3)")
        np.copyto(self._fij, fij, casting="same_kind")  # float32 converts as it copies: no temporary

    # -- halo exchange -------------------------------------------------------------------------
    def forward_exchange(self, src: np.ndarray, dst: np.ndarray, width: int) -> None:
        self._run_exchange(src, dst, width, reverse=0)

    def reverse_exchange(self, src: np.ndarray, dst: np.ndarray, width: int) -> None:
        self._run_exchange(src, dst, width, reverse=1)

    def _run_exchange(self, src, dst, width, reverse):
        width = int(width)
        for name, a in (("src", src), ("dst", dst)):
            if not isinstance(a, np.ndarray) or a.dtype.name not in DTYPE_CODES or not a.flags.c_contiguous:
                raise TypeError(f"{name} must be a C-contiguous float64 or float32 numpy array")
            if a.size != self.ntotal * width or (a.ndim > 1 and a.shape[0] != self.ntotal):
                raise ValueError(f"{name} has shape {a.shape}, expected ({self.ntotal}, {width})")
        if src.dtype != dst.dtype:
            raise TypeError(f"src is {src.dtype} but dst is {dst.dtype}")
        if not dst.flags.writeable:
            raise ValueError("dst is read-only")
        status = self._exchange(
            self._pair, src.ctypes.data, dst.ctypes.data, self.ntotal, width, DTYPE_CODES[src.dtype.name], reverse
        )
        if status:
            raise RuntimeError(f"halo exchange failed: {EXCHANGE_ERRORS.get(status, status)}")

    def halo(self, atoms: np.ndarray, position: np.ndarray, device) -> Halo:
        """The model's halo exchange for the model rows ``atoms`` (LAMMPS indices, locals first;
        ``position`` [ntotal] is the row of each LAMMPS atom, -1 for those left out).

        On one rank every ghost is an image of a local atom, so the exchange is a gather (and its
        transpose a scatter-add) on the model's ``device``: no host round trip, no collective, and
        the whole step can be one CUDA graph. On several ranks it goes through LAMMPS's
        communication (``lammps_exchange``). Timed as the section "halo"."""
        with section("halo"):
            if self.owner is None:
                return self.lammps_exchange(atoms)
            ghosts = np.flatnonzero(atoms >= self.nlocal)
            owners = position[self.owner[atoms[ghosts]]]
            return GatherHalo(torch.from_numpy(ghosts).to(device), torch.from_numpy(owners).to(device))

    def lammps_exchange(self, atoms: np.ndarray) -> Halo:
        """The halo exchange through forward_exchange / reverse_exchange (collective: every rank
        makes the same calls). Model rows are LAMMPS's atoms in LAMMPS's order (the plugin's step
        when no type is NULL) or a subset, ``atoms``."""
        if len(atoms) == self.ntotal:
            return Halo(self._copy_to_ghosts, self._sum_into_owners)
        return Halo(
            self._through_all_atoms(atoms, self.forward_exchange), self._through_all_atoms(atoms, self.reverse_exchange)
        )

    def _copy_to_ghosts(self, rows: torch.Tensor) -> torch.Tensor:
        """rows [ntotal,W] -> ghost rows replaced by their owners'. From a GPU only the local rows
        go to the host and only the ghost rows come back (through pinned memory). Timed, copies
        included, as the section "exchange"."""
        with section("exchange"):
            if rows.device.type == "cpu":
                return self._exchanged_copy(rows, self.forward_exchange)
            n = self.nlocal
            host = torch.empty(rows.shape, dtype=rows.dtype, pin_memory=True)
            host[:n].copy_(rows[:n])  # waits for the device: the exchange reads it next
            self._exchange_in_place(host, self.forward_exchange)
            out = torch.empty_like(rows)
            out[:n].copy_(rows[:n])
            out[n:].copy_(host[n:], non_blocking=True)
            return out

    def _sum_into_owners(self, rows: torch.Tensor) -> torch.Tensor:
        """rows [ntotal,W] -> owner rows plus their ghosts' rows, ghost rows zero. From a GPU only
        the ghost rows go to the host and only the sums for the local rows come back. Timed,
        copies included, as the section "exchange"."""
        with section("exchange"):
            if rows.device.type == "cpu":
                return self._exchanged_copy(rows, self.reverse_exchange)
            n = self.nlocal
            host = torch.empty(rows.shape, dtype=rows.dtype, pin_memory=True)
            host[n:].copy_(rows[n:])  # waits for the device: the exchange reads it next
            host[:n].zero_()
            self._exchange_in_place(host, self.reverse_exchange)
            out = torch.empty_like(rows)
            torch.add(rows[:n], host[:n].to(rows.device, non_blocking=True), out=out[:n])
            out[n:].zero_()
            return out

    def _exchanged_copy(self, rows: torch.Tensor, move) -> torch.Tensor:
        """A host copy of rows [ntotal,W] with ``move`` (one of the exchanges) applied."""
        out = rows.detach().clone()
        self._exchange_in_place(out, move)
        return out

    @staticmethod
    def _exchange_in_place(host: torch.Tensor, move) -> None:
        array = host.numpy()
        move(array, array, host.shape[1])

    def _through_all_atoms(self, atoms: np.ndarray, move):
        """A primitive for model rows that are a subset of LAMMPS's atoms (NULL types left out):
        rows are scattered into all ntotal atoms around the exchange. Rows left out start at
        zero, which is exact: forward, every ghost row is overwritten from its owner (chains
        through other ghosts included); reverse, zero adds nothing."""
        index = torch.from_numpy(atoms)

        def run(rows: torch.Tensor) -> torch.Tensor:
            with section("exchange"):
                full = rows.new_zeros((self.ntotal, rows.shape[1]), device="cpu")
                full[index] = rows.detach().cpu()
                self._exchange_in_place(full, move)
                return full[index].to(rows.device)

        return run
