"""The one-process halo exchange of the plugin's Python side (no LAMMPS needed)."""
import numpy as np
import torch

from mlff_distiller.lammps.halo_data import owner_gather_halo


def test_owner_gather_is_a_copy_and_its_reverse_the_transpose():
    rng = np.random.default_rng(0)
    n_local, owners = 5, np.array([0, 3, 3, 1, 4, 0, 2])
    ghosts = np.arange(n_local, n_local + owners.size)
    halo = owner_gather_halo(ghosts, owners)
    rows = torch.from_numpy(rng.normal(size=(n_local + owners.size, 4)))
    forward = halo.copy_to_ghosts(rows)
    expected = rows.clone()
    expected[ghosts] = rows[owners]
    assert torch.equal(forward, expected)
    grad = torch.from_numpy(rng.normal(size=rows.shape))
    reverse = halo.sum_into_owners(grad)
    assert not reverse[ghosts].any()
    # <forward(x), g> == <x, reverse(g)> for the transpose
    assert torch.allclose((forward * grad).sum(), (rows * reverse).sum(), rtol=1e-13)
