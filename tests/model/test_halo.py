"""Halo exchange mode: local atoms + one cutoff of ghost images, features exchanged per layer,
gives the same energies and edge gradients as the periodic graph (analytic and autograd)."""
import numpy as np
import pytest
import torch
from ase.neighborlist import neighbor_list

from mlff_distiller.model.graph import graph_from_atoms, species_indices
from mlff_distiller.model.halo import Halo

from model_cases import make_model, water_box


def ghost_graph(atoms, cutoff):
    """Local atoms 0..N-1 plus one ghost per periodic image that is some local atom's neighbour;
    edges only into local atoms, as a LAMMPS rank without ghost neighbour lists has them."""
    i, j, shift = neighbor_list("ijS", atoms, cutoff)
    images = {}
    owner = list(range(len(atoms)))
    sender = np.empty(len(j), dtype=np.int64)
    for e, (jj, s) in enumerate(zip(j, map(tuple, shift))):
        if s == (0, 0, 0):
            sender[e] = jj
            continue
        key = (jj, s)
        if key not in images:
            images[key] = len(owner)
            owner.append(jj)
        sender[e] = images[key]
    positions = np.array([atoms.positions[o] + np.dot(s, atoms.cell) for (o, s) in images])
    all_positions = np.concatenate([atoms.positions, positions.reshape(-1, 3)])
    r_ij = all_positions[sender] - all_positions[i]
    species = species_indices(np.array(atoms.get_chemical_symbols())[owner], ["H", "C", "N", "O"])
    return (torch.from_numpy(species), torch.from_numpy(i.astype(np.int64)), torch.from_numpy(sender),
            torch.from_numpy(r_ij), torch.tensor(owner))


def python_halo(owner, n_local):
    ghosts = torch.arange(n_local, len(owner))
    owners = owner[n_local:]

    def copy_to_ghosts(rows):
        rows = rows.clone()
        rows[ghosts] = rows[owners]
        return rows

    def sum_into_owners(rows):
        rows = rows.index_add(0, owners, rows[ghosts])
        rows[ghosts] = 0
        return rows

    return Halo(copy_to_ghosts, sum_into_owners)


@pytest.mark.parametrize("method", ["analytic", "autograd"])
def test_halo_mode_equals_periodic_graph(method):
    model = make_model(n_features=16)
    atoms = water_box(cell=[[6.2, 0, 0], [1.5, 6.0, 0], [0.8, 1.1, 6.4]])
    g = graph_from_atoms([atoms], model.elements, model.cutoff)
    e_ref, grad_ref = model.energies_and_edge_gradients(g.species, g.edge_i, g.edge_j, g.r_ij, method="autograd")
    species, edge_i, edge_j, r_ij, owner = ghost_graph(atoms, model.cutoff)
    assert len(owner) > 3 * len(atoms)  # the ghosts are many, and have no edges of their own
    energies, grad = model.energies_and_edge_gradients(species, edge_i, edge_j, r_ij, len(atoms), method,
                                                       python_halo(owner, len(atoms)))
    assert (energies - e_ref).abs().max() < 1e-12
    # same edges, same order (both from ASE's neighbour list): the gradients must match
    assert (grad - grad_ref).abs().max() < 1e-10


def test_without_halo_the_ghost_graph_is_wrong():
    """The check above is not vacuous: without the exchange the ghosts' features are stale."""
    model = make_model(n_features=16)
    atoms = water_box()
    g = graph_from_atoms([atoms], model.elements, model.cutoff)
    e_ref, _ = model.energies_and_edge_gradients(g.species, g.edge_i, g.edge_j, g.r_ij)
    species, edge_i, edge_j, r_ij, owner = ghost_graph(atoms, model.cutoff)
    energies, _ = model.energies_and_edge_gradients(species, edge_i, edge_j, r_ij, len(atoms))
    assert (energies - e_ref).abs().max() > 1e-4
