"""ASE calculator around the student (energy, free_energy, forces, stress, per-atom energies), and
the force spread of a committee of students, the project's one uncertainty measure."""

from __future__ import annotations

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from .graph import forces_from_edge_gradients, graph_from_atoms, strain_derivative
from .io import load_model
from .interface import StudentModel


class StudentCalculator(Calculator):
    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, model: StudentModel | str = "default", method: str = "analytic", dtype=torch.float64, **kwargs):
        super().__init__(**kwargs)
        self.model = model if isinstance(model, StudentModel) else load_model(model, dtype)
        self.method = method

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        graph = graph_from_atoms([self.atoms], self.model.elements, self.model.cutoff, self.model.dtype)
        self.model.validate_inputs(graph.species, graph.edge_i, graph.edge_j, graph.r_ij)
        graph = graph.to(self.model.device)  # a model on a GPU computes there; the results come back
        with torch.no_grad():
            energies, grad = self.model.energies_and_edge_gradients(
                graph.species, graph.edge_i, graph.edge_j, graph.r_ij, method=self.method
            )
        energy = float(energies.sum())
        self.results["energy"] = self.results["free_energy"] = energy
        self.results["energies"] = energies.double().cpu().numpy()
        forces = forces_from_edge_gradients(graph.edge_i, graph.edge_j, grad, len(self.atoms))
        self.results["forces"] = forces.double().cpu().numpy()
        if self.atoms.cell.rank == 3:
            sigma = (strain_derivative(graph.r_ij, grad) / self.atoms.get_volume()).double().cpu().numpy()
            self.results["stress"] = sigma.flat[[0, 4, 8, 5, 2, 1]]


def committee_force_spread(member_forces: np.ndarray) -> np.ndarray:
    """[N] spread of the members' force vectors on each atom (eV/A), sqrt(mean_k |F_k - mean F|^2),
    from member_forces [K,N,3]."""
    return np.sqrt(((member_forces - member_forces.mean(0)) ** 2).sum(-1).mean(0))
