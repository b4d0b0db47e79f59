"""Halo exchange between atoms and their ghost copies, for message passing across MPI ranks and
periodic images without recomputing a deep ghost shell.

With a halo, only the atoms whose energies count (the local atoms) receive messages over edges;
after every layer but the last, ``forward`` copies each owner's features onto its ghost copies,
so the next layer reads correct ghost features. The analytic backward runs the transpose:
``reverse`` adds the gradient that landed on ghost rows to their owners (and clears the ghosts).

The two primitives come from whoever owns the atom decomposition (our LAMMPS plugin pair style;
``GatherHalo`` below when one process holds every owner):
    copy_to_ghosts(rows [N,W]) -> [N,W]   ghost rows replaced by their owner's row
    sum_into_owners(rows [N,W]) -> [N,W]  owner rows += their ghosts' rows, ghost rows zero
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

Exchange = Callable[[Tensor], Tensor]


class _ForwardExchange(torch.autograd.Function):
    """Makes the exchange differentiable for the autograd reference path."""

    @staticmethod
    def forward(ctx, rows, halo):
        ctx.halo = halo
        return halo.copy_to_ghosts(rows)

    @staticmethod
    def backward(ctx, grad):
        return ctx.halo.sum_into_owners(grad.contiguous()), None


class Halo:
    def __init__(self, copy_to_ghosts: Exchange, sum_into_owners: Exchange):
        self.copy_to_ghosts = copy_to_ghosts
        self.sum_into_owners = sum_into_owners

    def forward(self, s: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """s [N,F], v [N,3,F] -> the same with ghost rows taken from their owners (one exchange)."""
        n, f = s.shape
        rows = torch.cat((s, v.reshape(n, 3 * f)), dim=1)
        rows = _ForwardExchange.apply(rows, self) if rows.requires_grad else self.copy_to_ghosts(rows)
        return rows[:, :f], rows[:, f:].reshape(n, 3, f)

    def reverse(self, g_s: Tensor, g_v: Tensor) -> tuple[Tensor, Tensor]:
        """Transpose of ``forward`` for the gradients g_s [N,F], g_v [N,3,F]."""
        n, f = g_s.shape
        rows = self.sum_into_owners(torch.cat((g_s, g_v.reshape(n, 3 * f)), dim=1))
        return rows[:, :f], rows[:, f:].reshape(n, 3, f)


class GatherHalo(Halo):
    """The exchange within one process (one MPI rank: every ghost is a periodic image of a local
    atom): row ``ghosts[k]`` is a copy of row ``owners[k]``, both index tensors [G] on the model's
    device. forward gathers, reverse scatter-adds and clears the ghost rows: device operations
    only, so ``replay.py`` can pad the indices and capture the whole step in a CUDA graph."""

    def __init__(self, ghosts: Tensor, owners: Tensor):
        self.ghosts, self.owners = ghosts, owners
        super().__init__(self._copy_to_ghosts, self._sum_into_owners)

    def _copy_to_ghosts(self, rows: Tensor) -> Tensor:
        return rows.index_copy(0, self.ghosts, rows.index_select(0, self.owners))

    def _sum_into_owners(self, rows: Tensor) -> Tensor:
        return rows.index_add(0, self.owners, rows.index_select(0, self.ghosts)).index_fill(0, self.ghosts, 0)
