"""From structures to the model's edge lists, and from edge gradients back to forces and stress.

Conventions shared by the whole package (and by LAMMPS's ML-IAP): a directed edge (i, j) means
"j sends to i", r_ij = x_j - x_i (+ the periodic shift), and the model returns g_ij = dE/dr_ij.
Then F_i = +sum_{e: i} g_e - sum_{e: j} g_e  and  dE/d(strain) = sum_e g_e (x) r_e.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass
class Graph:
    """One structure, or several concatenated (``batch`` maps atoms to structures)."""

    species: Tensor  # [N] long, index into the model's elements
    edge_i: Tensor  # [E] long
    edge_j: Tensor  # [E] long
    r_ij: Tensor  # [E,3]
    batch: Tensor  # [N] long
    n_structures: int

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "Graph":
        """Every tensor on ``device`` (default: where it is), r_ij in ``dtype`` (default: its own)."""
        return Graph(
            self.species.to(device),
            self.edge_i.to(device),
            self.edge_j.to(device),
            self.r_ij.to(device, dtype),
            self.batch.to(device),
            self.n_structures,
        )


def species_indices(symbols, elements) -> np.ndarray:
    """Index of each chemical symbol in the model's element list; a clear error for unknown ones."""
    lookup = {el: k for k, el in enumerate(elements)}
    unknown = sorted(set(symbols) - lookup.keys())
    if unknown:
        raise ValueError(
            f"element(s) {', '.join(unknown)} not in the model's elements {list(elements)}: use a model trained on them"
        )
    return np.array([lookup[s] for s in symbols], dtype=np.int64)


def edges_from_atoms(atoms, cutoff: float):
    """Directed edges within ``cutoff`` of an ASE Atoms (periodic images included).

    Returns edge_i [E], edge_j [E] (int64 numpy) and r_ij [E,3] (float64 numpy).
    """
    from ase.neighborlist import neighbor_list

    edge_i, edge_j, r_ij = neighbor_list("ijD", atoms, cutoff, self_interaction=False)
    return edge_i.astype(np.int64), edge_j.astype(np.int64), r_ij


def graph_from_atoms(atoms_list, elements, cutoff: float, dtype=torch.float64) -> Graph:
    """Concatenate structures into one graph (edges offset to the atoms of their structure)."""
    species, edge_i, edge_j, r_ij, batch = [], [], [], [], []
    offset = 0
    for k, atoms in enumerate(atoms_list):
        i, j, r = edges_from_atoms(atoms, cutoff)
        species.append(species_indices(atoms.get_chemical_symbols(), elements))
        edge_i.append(i + offset)
        edge_j.append(j + offset)
        r_ij.append(r)
        batch.append(np.full(len(atoms), k, dtype=np.int64))
        offset += len(atoms)
    cat = np.concatenate
    return Graph(
        torch.from_numpy(cat(species)),
        torch.from_numpy(cat(edge_i)),
        torch.from_numpy(cat(edge_j)),
        torch.from_numpy(cat(r_ij).reshape(-1, 3)).to(dtype),
        torch.from_numpy(cat(batch)),
        len(atoms_list),
    )


def forces_from_edge_gradients(edge_i: Tensor, edge_j: Tensor, grad: Tensor, n_atoms: int) -> Tensor:
    """F [N,3] = -dE/dx from g [E,3] = dE/dr_ij (r_ij = x_j - x_i)."""
    forces = grad.new_zeros(n_atoms, 3)
    return forces.index_add(0, edge_i, grad).index_add(0, edge_j, -grad)


def strain_derivative(r_ij: Tensor, grad: Tensor) -> Tensor:
    """dE/d(strain) [3,3] = sum_e g_e (x) r_e, symmetrised; stress = this / volume (ASE's sign)."""
    w = grad.T @ r_ij
    return 0.5 * (w + w.T)
