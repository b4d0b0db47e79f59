"""Halo exchange mode: local atoms + one cutoff of ghost images, features exchanged per layer,
gives the same energies and edge gradients as the periodic graph (analytic and autograd)."""

import pytest
import torch

from mlff_distiller.model.graph import graph_from_atoms
from mlff_distiller.model.halo import GatherHalo, Halo

from model_cases import ghost_graph, make_model, water_box


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
    energies, grad = model.energies_and_edge_gradients(
        species, edge_i, edge_j, r_ij, len(atoms), method, python_halo(owner, len(atoms))
    )
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


@pytest.mark.parametrize("method", ["analytic", "autograd"])
def test_gather_halo_equals_the_exchange_it_replaces(method):
    """GatherHalo (one process, device operations only) gives what the callback exchange gives."""
    model = make_model(n_features=16)
    atoms = water_box()
    species, edge_i, edge_j, r_ij, owner = ghost_graph(atoms, model.cutoff)
    n = len(atoms)
    reference = model.energies_and_edge_gradients(species, edge_i, edge_j, r_ij, n, method, python_halo(owner, n))
    gather = GatherHalo(torch.arange(n, len(owner)), owner[n:])
    result = model.energies_and_edge_gradients(species, edge_i, edge_j, r_ij, n, method, gather)
    assert all((a - b).abs().max() < 1e-12 for a, b in zip(result, reference))


def test_update_blocks_skip_ghost_rows():
    """With a halo the update blocks run on the counted rows only (ghost rows are overwritten by
    the next exchange, and their energies do not count): the numbers above stay exact."""
    model = make_model(n_features=16)
    species, edge_i, edge_j, r_ij, owner = ghost_graph(water_box(), model.cutoff)
    n = int((owner == torch.arange(len(owner))).sum())
    rows = []
    for update in model.updates:
        update.register_forward_hook(lambda module, args, output: rows.append(args[0].shape[0]))
    model.energies_and_edge_gradients(species, edge_i, edge_j, r_ij, n, "analytic", python_halo(owner, n))
    assert rows == [n] * model.config.n_layers and n < len(owner) / 3
