"""A student's predictions over a data set and their errors against the teacher: what training
(validation) and ``evaluate`` (reports, tables, plots) both use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..model.graph import forces_from_edge_gradients
from ..model.interface import StudentModel
from .dataset import Batch, GraphDataset


# ----------------------------------------------------------------------------------------------
# Predictions
# ----------------------------------------------------------------------------------------------
def predict(model: StudentModel, batch: Batch, method: str = "analytic") -> tuple[Tensor, Tensor]:
    """Total energies [B] (float64) and forces [N,3] (model dtype) of the structures of a batch.

    With parameters that require grad this stays differentiable, the analytic forces included:
    training back-propagates through exactly this function.
    """
    g = batch.graph
    atom_energies, edge_grad = model.energies_and_edge_gradients(g.species, g.edge_i, g.edge_j, g.r_ij, method=method)
    # float64 sum: total energies of big boxes are large numbers whose differences we need
    energies = atom_energies.double().new_zeros(g.n_structures).index_add(0, g.batch, atom_energies.double())
    forces = forces_from_edge_gradients(g.edge_i, g.edge_j, edge_grad, g.species.shape[0])
    return energies, forces


@dataclass
class Predictions:
    """Student and teacher values of a whole data set (S structures, N atoms in all), in eV, eV/A."""

    energy: np.ndarray  # [S] student
    energy_ref: np.ndarray  # [S] teacher
    n_atoms: np.ndarray  # [S]
    forces: np.ndarray  # [N,3] student
    forces_ref: np.ndarray  # [N,3] teacher
    symbols: np.ndarray  # [N] chemical symbol of every atom
    groups: np.ndarray  # [S] group label of every structure ("" without grouping)
    reference_energy: np.ndarray  # [S] sum of the model's per-element shifts (for plots)


def group_labels(structures, group_key: str | Sequence[str] | None) -> np.ndarray:
    """[S] label of each structure: its ``info`` value of one key, or of several keys joined by
    " / " (one group per combination); "" without a key."""
    keys = [group_key] if isinstance(group_key, str) else list(group_key or [])
    return np.array([" / ".join(str(a.info.get(key, "")) for key in keys) for a in structures])


def predicted_energies_and_forces(
    model: StudentModel, dataset: GraphDataset, batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Energies [S] and forces [N,3] (float64 numpy) of every structure, in file order, computed on
    the model's device."""
    energy, forces = [], []
    dataset = dataset.to(model.device)
    with torch.no_grad():
        for batch in dataset.batches(batch_size):
            e, f = predict(model, batch)
            energy.append(e.cpu().numpy())
            forces.append(f.double().cpu().numpy())
    return np.concatenate(energy), np.concatenate(forces)


def collect_predictions(
    model: StudentModel, dataset: GraphDataset, batch_size: int = 32, group_key: str | Sequence[str] | None = None
) -> Predictions:
    """Run the student (analytic forces, no autograd) over every structure, in file order."""
    energy, forces = predicted_energies_and_forces(model, dataset, batch_size)
    structures = dataset.structures
    species = torch.cat([s.graph.species.cpu() for s in dataset.samples])
    shift = model.reference_energies.detach().double().cpu().index_select(0, species).numpy()
    n_atoms = np.array([len(a) for a in structures])
    return Predictions(
        energy=energy,
        energy_ref=np.array([a.get_potential_energy() for a in structures]),
        n_atoms=n_atoms,
        forces=forces,
        forces_ref=np.concatenate([a.get_forces() for a in structures]),
        symbols=np.array([s for a in structures for s in a.get_chemical_symbols()]),
        groups=group_labels(structures, group_key),
        reference_energy=np.add.reduceat(shift, np.cumsum(np.r_[0, n_atoms[:-1]])),
    )


# ----------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------
def force_errors(forces: np.ndarray, forces_ref: np.ndarray) -> dict:
    """MAE and RMSE over force components, and the largest error of one atom's force vector
    (its norm), in meV/A."""
    diff = forces - forces_ref
    return {
        "force_mae_meV_per_A": 1e3 * float(np.mean(np.abs(diff))),
        "force_rmse_meV_per_A": 1e3 * float(np.sqrt(np.mean(diff**2))),
        "force_max_error_meV_per_A": 1e3 * float(np.linalg.norm(diff, axis=1).max()),
    }


def energy_errors(energy: np.ndarray, energy_ref: np.ndarray, n_atoms: np.ndarray) -> dict:
    """MAE and RMSE of the energy per atom, in meV/atom."""
    diff = (energy - energy_ref) / n_atoms
    return {
        "energy_mae_meV_per_atom": 1e3 * float(np.mean(np.abs(diff))),
        "energy_rmse_meV_per_atom": 1e3 * float(np.sqrt(np.mean(diff**2))),
    }


def error_metrics(p: Predictions) -> dict:
    """Overall errors, force errors per element, and all errors per group (when grouped)."""
    atom_group = np.repeat(p.groups, p.n_atoms)
    # str(): numpy strings as keys would make the metrics unloadable from model files (weights_only)
    metrics = {
        "n_structures": int(len(p.energy)),
        "n_atoms": int(p.n_atoms.sum()),
        **energy_errors(p.energy, p.energy_ref, p.n_atoms),
        **force_errors(p.forces, p.forces_ref),
    }
    metrics["per_element"] = {
        str(el): {
            "n_atoms": int((p.symbols == el).sum()),
            **force_errors(p.forces[p.symbols == el], p.forces_ref[p.symbols == el]),
        }
        for el in dict.fromkeys(p.symbols)
    }
    if len(set(p.groups)) > 1 or p.groups[0]:
        metrics["per_group"] = {
            str(group): {
                "n_structures": int((p.groups == group).sum()),
                **energy_errors(
                    p.energy[p.groups == group], p.energy_ref[p.groups == group], p.n_atoms[p.groups == group]
                ),
                **force_errors(p.forces[atom_group == group], p.forces_ref[atom_group == group]),
            }
            for group in dict.fromkeys(p.groups)
        }
    return metrics
