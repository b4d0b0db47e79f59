"""Is message passing exact with the ghost atoms LAMMPS provided?

A model of L layers with cutoff rc makes the energy of an atom depend on atoms up to L*rc away,
through the neighbour lists of atoms up to (L-1)*rc away. With stock ML-IAP that works only in
ghost-neighbour mode (`pair_style mliap unified FILE 1`) with a ghost shell at least L*rc + skin
thick (`comm_modify cutoff`). Stock LAMMPS does not check this and a thin shell gives silently
wrong forces, so we check here and stop with the line to add.

The communication cutoff is not in LAMMPS's library interface: it is read by following the
pointers of the ML-IAP data object to LAMMPS's Comm and calling Comm::get_comm_cutoff(). Each step
of that path is validated (the LAMMPS instance found must report the same atom counts as the data
object); when it cannot be validated the run stops rather than going on unchecked.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

SKIN_DEFAULT_METAL = 2.0
_GET_COMM_CUTOFF = "_ZN9LAMMPS_NS4Comm15get_comm_cutoffEv"
_COMM_SLOT = 7  # LAMMPS::comm is the 8th pointer member of class LAMMPS (lammps.h)


class GhostShellError(RuntimeError):
    pass


def required_cutoff(n_layers: int, cutoff: float, skin: float = SKIN_DEFAULT_METAL) -> float:
    return n_layers * cutoff + skin


def ghost_mode_lines(model_file: str, n_layers: int, cutoff: float, skin: float = SKIN_DEFAULT_METAL) -> str:
    return (f"pair_style mliap unified {model_file} 1\n"
            f"comm_modify cutoff {required_cutoff(n_layers, cutoff, skin):g}")


def check_message_passing_is_exact(data, n_layers: int, cutoff: float, pair_j: np.ndarray) -> None:
    """Raise GhostShellError when the local energies would depend on ghost atoms whose own
    neighbours LAMMPS did not provide."""
    if n_layers <= 1 or data.ntotal == data.nlocal:
        return  # a pair-like model, or no ghost atoms at all (a molecule on one rank, say)
    ghost_neighbour_mode = data.natomneigh > data.nlistatoms
    if not ghost_neighbour_mode:
        if len(pair_j) and int(pair_j.max()) >= data.nlocal:
            raise GhostShellError(
                f"this {n_layers}-layer model passes messages through ghost atoms (periodic images or atoms of "
                "other MPI ranks), but LAMMPS gave no neighbour lists for ghost atoms, so forces would be wrong. "
                "Use ghost-neighbour mode:\n" + ghost_mode_lines("<model file>", n_layers, cutoff)
                + "\n(or the mlff-distiller plugin pair style with halo exchange; `mlff-distiller lammps-input` "
                "prints both)")
        return
    shell = communication_cutoff(data)
    if shell < n_layers * cutoff:
        raise GhostShellError(
            f"the ghost shell is {shell:g} A thick, but this {n_layers}-layer model with a {cutoff:g} A cutoff "
            f"needs at least {n_layers * cutoff:g} A plus the neighbour skin, or forces are silently wrong. Add:\n"
            f"comm_modify cutoff {required_cutoff(n_layers, cutoff):g}")


def _lammps_library():
    """The liblammps already loaded in this process (lmp binary or the lammps Python module)."""
    lib = ctypes.CDLL(None)
    if hasattr(lib, _GET_COMM_CUTOFF):
        return lib
    import lammps  # Python-driven sessions load liblammps from the lammps package

    for name in ("liblammps.so", "liblammps.so.0"):
        try:
            lib = ctypes.CDLL(str(Path(lammps.__file__).parent / name), ctypes.RTLD_GLOBAL)
        except OSError:
            continue
        if hasattr(lib, _GET_COMM_CUTOFF):
            return lib
    raise GhostShellError("cannot find LAMMPS's Comm::get_comm_cutoff to check the ghost shell")


def communication_cutoff(data) -> float:
    """LAMMPS's communication cutoff, reached from the ML-IAP data object (see module doc)."""
    lib = _lammps_library()
    pointer = ctypes.c_void_p
    # MLIAPDataPy (Cython): PyObject header, then `MLIAPData *data`; MLIAPData derives from
    # Pointers: vtable pointer, then `LAMMPS *lmp`.
    data_ptr = pointer.from_address(id(data) + 2 * ctypes.sizeof(pointer)).value
    lmp_ptr = pointer.from_address(data_ptr + ctypes.sizeof(pointer)).value if data_ptr else None
    lib.lammps_extract_setting.restype = ctypes.c_int
    lib.lammps_extract_setting.argtypes = [pointer, ctypes.c_char_p]
    if not lmp_ptr or (lib.lammps_extract_setting(lmp_ptr, b"nlocal"), lib.lammps_extract_setting(lmp_ptr, b"nall")) \
            != (data.nlocal, data.ntotal):
        raise GhostShellError("cannot reach this LAMMPS's communication settings to check the ghost shell "
                              "(unknown LAMMPS version): use the mlff-distiller plugin pair style instead")
    comm_ptr = pointer.from_address(lmp_ptr + _COMM_SLOT * ctypes.sizeof(pointer)).value
    get_cutoff = getattr(lib, _GET_COMM_CUTOFF)
    get_cutoff.restype = ctypes.c_double
    get_cutoff.argtypes = [pointer]
    return float(get_cutoff(comm_ptr))
