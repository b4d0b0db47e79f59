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

Compiled code (``replay.py``) cannot trace host callbacks, which change every step; it calls the
opaque operator ``halo_exchange`` instead (``STEP_HALO`` inside the compiled model), which runs
the primitives of the halo that ``exchanging`` made current for that call.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

import torch
from torch import Tensor

Exchange = Callable[[Tensor], Tensor]


class Halo:
    def __init__(self, copy_to_ghosts: Exchange, sum_into_owners: Exchange):
        self.copy_to_ghosts = copy_to_ghosts
        self.sum_into_owners = sum_into_owners

    def forward(self, s: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """s [N,F], v [N,3,F] -> the same with ghost rows taken from their owners (one exchange)."""
        n, f = s.shape
        rows = self.exchange(torch.cat((s, v.reshape(n, 3 * f)), dim=1), reverse=False)
        return rows[:, :f], rows[:, f:].reshape(n, 3, f)

    def reverse(self, g_s: Tensor, g_v: Tensor) -> tuple[Tensor, Tensor]:
        """Transpose of ``forward`` for the gradients g_s [N,F], g_v [N,3,F]."""
        n, f = g_s.shape
        rows = self.exchange(torch.cat((g_s, g_v.reshape(n, 3 * f)), dim=1), reverse=True)
        return rows[:, :f], rows[:, f:].reshape(n, 3, f)

    def primitive(self, rows: Tensor, reverse: bool) -> Tensor:
        """sum_into_owners (reverse) or copy_to_ghosts, as given."""
        return self.sum_into_owners(rows) if reverse else self.copy_to_ghosts(rows)

    def exchange(self, rows: Tensor, reverse: bool) -> Tensor:
        """One primitive, differentiable (the autograd method differentiates through it)."""
        if rows.requires_grad:
            return _DifferentiableExchange.apply(rows, self, reverse)
        return self.primitive(rows, reverse)


class _DifferentiableExchange(torch.autograd.Function):
    """Each primitive's gradient is the other one: they are each other's transpose."""

    @staticmethod
    def forward(ctx, rows, halo, reverse):
        ctx.halo, ctx.reverse = halo, reverse
        return halo.primitive(rows, reverse)

    @staticmethod
    def backward(ctx, grad):
        return ctx.halo.primitive(grad.contiguous(), not ctx.reverse), None, None


class GatherHalo(Halo):
    """The exchange within one process (one MPI rank: every ghost is a periodic image of a local
    atom): row ``ghosts[k]`` is a copy of row ``owners[k]``, both index tensors [G] on the model's
    device. forward gathers, reverse scatter-adds and clears the ghost rows: device operations
    only, so ``replay.py`` can pad the indices and capture the whole step in a CUDA graph."""

    def __init__(self, ghosts: Tensor, owners: Tensor):
        self.ghosts, self.owners = ghosts, owners
        super().__init__(self._copy_to_ghosts, self._sum_into_owners)

    def exchange(self, rows: Tensor, reverse: bool) -> Tensor:
        return self.primitive(rows, reverse)  # device operations: differentiable as they are

    def _copy_to_ghosts(self, rows: Tensor) -> Tensor:
        return rows.index_copy(0, self.ghosts, rows.index_select(0, self.owners))

    def _sum_into_owners(self, rows: Tensor) -> Tensor:
        return rows.index_add(0, self.owners, rows.index_select(0, self.ghosts)).index_fill(0, self.ghosts, 0)


# -- host exchanges inside compiled code ---------------------------------------------------------
_CURRENT: list[tuple[Halo, int]] = []  # (halo, its rows) of the compiled call in progress


@contextmanager
def exchanging(halo: Halo, n_rows: int):
    """Make ``halo`` the exchange of ``halo_exchange`` for one call over buffers whose first
    ``n_rows`` rows are its atoms (the rest is padding, which no exchange touches)."""
    _CURRENT.append((halo, n_rows))
    try:
        yield
    finally:
        _CURRENT.pop()


@torch.library.custom_op("mlff_distiller::halo_exchange", mutates_args=())
def halo_exchange(rows: Tensor, reverse: bool) -> Tensor:
    """A primitive of the current halo (``exchanging``) on rows [M,W], M >= its rows -> [M,W]."""
    if not _CURRENT:
        raise RuntimeError("halo_exchange ran outside `exchanging(halo, n_rows)`: no exchange is current")
    halo, n = _CURRENT[-1]
    real = rows[:n].contiguous()
    moved = halo.primitive(real, reverse)
    if n < rows.shape[0]:
        return torch.cat((moved, rows[n:]))
    return moved.clone() if moved is real else moved  # an operator's output must not be its input


@halo_exchange.register_fake
def _(rows: Tensor, reverse: bool) -> Tensor:
    return torch.empty_like(rows)


def _halo_exchange_setup(ctx, inputs, output):
    ctx.reverse = inputs[1]


def _halo_exchange_backward(ctx, grad):
    return halo_exchange(grad.contiguous(), not ctx.reverse), None


halo_exchange.register_autograd(_halo_exchange_backward, setup_context=_halo_exchange_setup)


class _StepHalo(Halo):
    """The halo that compiled code sees: whatever ``exchanging`` made current, through the op."""

    def __init__(self):
        super().__init__(lambda rows: halo_exchange(rows, False), lambda rows: halo_exchange(rows, True))

    def exchange(self, rows: Tensor, reverse: bool) -> Tensor:
        return self.primitive(rows, reverse)  # differentiable through the operator's registered autograd


STEP_HALO = _StepHalo()
