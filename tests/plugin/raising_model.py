"""An ML-IAP unified model whose compute_forces raises, for the error test (imported by LAMMPS's
embedded Python through PYTHONPATH)."""
from lammps.mliap.mliap_unified_abc import MLIAPUnified


class RaisingUnified(MLIAPUnified):
    def __init__(self):
        super().__init__(element_types=["H", "O"], ndescriptors=1, nparams=1, rcutfac=2.0)

    def compute_gradients(self, data):
        pass

    def compute_descriptors(self, data):
        pass

    def compute_forces(self, data):
        raise RuntimeError("the model refuses")
