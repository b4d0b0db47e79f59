"""The PaiNN student (an ``interface.StudentModel``, registered as "painn" in ``architectures.py``)
and its one entry point, ``energies_and_edge_gradients``.

The analytic backward walks the blocks of ``blocks.py`` in reverse, layer by layer, and returns
dE/dr_ij for every edge: no autograd at run time. ``method="autograd"`` runs the very same
forward and lets torch differentiate it; tests and benchmarks swap the two.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .blocks import (
    EdgeFilter,
    EdgeFilterContext,
    EdgeGeometry,
    EdgeGeometryContext,
    Message,
    MessageContext,
    Readout,
    ReadoutContext,
    Update,
    UpdateContext,
)
from .halo import Halo
from .priors import ZBLRepulsion, ZBLRepulsionContext

METHODS = ("analytic", "autograd")
DTYPES = {"float64": torch.float64, "float32": torch.float32}  # the precisions a model runs in, by name
COMPILED_CPU_CHUNK_BYTES = 1 << 30  # one [E, 3F] temporary of the compiled CPU path, at most
EXPORTED_MAX_EDGES = (1 << 31) - 1  # the one chunk of an ahead-of-time package (lammps/aoti.py), at most


@dataclass
class PaiNNConfig:
    """Hyper-parameters; stored in model files, so keep it to plain types."""

    elements: list[str] = field(default_factory=lambda: ["H", "C", "N", "O"])
    n_features: int = 128
    n_layers: int = 3
    n_radial: int = 20
    cutoff: float = 5.0
    epsilon: float = 1e-8
    # ZBL screened nuclear repulsion inside bonding distance (``priors.ZBLRepulsion``), added to
    # the network's energy; off in files written before it existed
    repulsion: bool = False
    # where the repulsion ends, as a fraction of the two atoms' covalent radii summed; files
    # written before it existed used 1.0, which reaches into every bond (docs/training.md)
    repulsion_reach: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


class LayerContext(NamedTuple):
    message_ctx: MessageContext
    update_ctx: UpdateContext


class PaiNNContext(NamedTuple):
    """What the analytic backward needs from ``PaiNN._forward``: each block's context, layer by layer."""

    geometry_ctx: EdgeGeometryContext
    filter_ctx: EdgeFilterContext
    layer_ctx: list[LayerContext]
    readout_ctx: ReadoutContext
    repulsion_ctx: ZBLRepulsionContext | None  # None without a repulsion term
    v: Tensor  # [N,3,F] the vectors after the last layer


class PaiNN(nn.Module):
    """PaiNN (Schuett, Unke, Gastegger 2021) with per-element energy shift and scale."""

    def __init__(self, config: PaiNNConfig):
        super().__init__()
        self.config = config
        F, L = config.n_features, config.n_layers
        self.embedding = nn.Embedding(len(config.elements), F)
        self.edge_filter = EdgeFilter(config.n_radial, config.cutoff, L, 3 * F)
        self.messages = nn.ModuleList(Message(F) for _ in range(L))
        self.updates = nn.ModuleList(Update(F, config.epsilon) for _ in range(L))
        self.readout = Readout(F, len(config.elements))
        self.repulsion = ZBLRepulsion(config.elements, config.repulsion_reach) if config.repulsion else None
        # bytes of one [chunk, 3F] edge temporary of the analytic path on the CPU: small enough to
        # stay in cache (``edge_chunk`` decides for every device)
        self.chunk_bytes = 1 << 18

    @property
    def cutoff(self) -> float:
        return self.config.cutoff

    @property
    def elements(self) -> list[str]:
        return list(self.config.elements)

    @property
    def n_message_passes(self) -> int:
        """One message pass per layer."""
        return self.config.n_layers

    @property
    def device(self) -> torch.device:
        """Where the model's weights live (all on one device: ``to`` moves them together)."""
        return self.embedding.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The precision the model runs in (all weights share it), the dtype r_ij must have."""
        return self.embedding.weight.dtype

    @property
    def reference_energies(self) -> Tensor:
        """[n_elements] the readout's per-element shift (eV)."""
        return self.readout.shift

    def set_reference_energies(self, energies, scale: float) -> None:
        """The readout's per-element shift and its scale (``Readout``)."""
        self.readout.shift.copy_(torch.as_tensor(energies))
        self.readout.scale.fill_(scale)

    def prior_energy(self, species: Tensor, edge_i: Tensor, edge_j: Tensor, r_ij: Tensor) -> Tensor | None:
        """The summed ZBL repulsion (float64 scalar, eV) over the edges, in the precision of its
        buffers (float64 in a fresh model, whatever its weights'); None without repulsion."""
        if self.repulsion is None:
            return None
        (d, _), _ = EdgeGeometry.forward(r_ij.to(self.repulsion.prefactor.dtype))
        return self.repulsion(d, species.long(), edge_i.long(), edge_j.long())[0].double().sum()

    # ------------------------------------------------------------------------------------------
    def energies_and_edge_gradients(
        self,
        species: Tensor,
        edge_i: Tensor,
        edge_j: Tensor,
        r_ij: Tensor,
        n_counted: int | None = None,
        method: str = "analytic",
        halo: Halo | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Per-atom energies and dE/dr_ij, the entry point everything else uses.

        species [N]: index of each atom's element in ``config.elements``.
        edge_i, edge_j [E]: directed edges, "j sends to i"; r_ij [E,3] = x_j - x_i.
        n_counted: the leading atoms whose energies count (default all N); the others only
            send messages (ghost atoms, for example).
        halo: exchange of features with ghost atoms (see ``halo.py``); then only counted atoms
            need incoming edges, ghosts get their features from their owners after each layer,
            and the update blocks run on the counted atoms only.
        Returns energies [n_counted] and dE/dr_ij [E,3], the gradient of the summed energy of
        the counted atoms, in the dtype of the model.

        Nothing here reads tensor values on the host, so a call on a GPU never waits for it:
        check inputs with ``validate_inputs`` where they arrive (once per neighbour list).
        """
        n_counted = species.shape[0] if n_counted is None else n_counted
        self.check_layout(species, edge_i, edge_j, r_ij, n_counted)
        counted = r_ij.new_zeros(species.shape[0])
        counted[:n_counted] = 1.0
        energies, grad = self.energies_and_weighted_edge_gradients(
            species, edge_i, edge_j, r_ij, counted, method, halo, n_counted
        )
        return energies[:n_counted], grad

    def forward(self, species, edge_i, edge_j, r_ij, n_counted=None, method="analytic", halo=None):
        return self.energies_and_edge_gradients(species, edge_i, edge_j, r_ij, n_counted, method, halo)

    def energies_and_weighted_edge_gradients(
        self,
        species: Tensor,
        edge_i: Tensor,
        edge_j: Tensor,
        r_ij: Tensor,
        weights: Tensor,
        method: str = "analytic",
        halo: Halo | None = None,
        n_owned: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The shape-static core of ``energies_and_edge_gradients``, for callers that replay it
        over fixed buffers (``replay.py``): energies of all N atoms and the gradient with respect
        to r_ij of sum(weights [N] * energies). Weights of 1 for the counted atoms and 0 for the
        others give exactly the gradient of the counted energies. No checks at all.

        n_owned (with a halo): the leading rows that hold every counted atom. The other rows are
        ghosts (or padding), whose updated features nothing reads: the exchange overwrites them
        before the next layer and their energies have weight 0. So the update blocks skip them,
        which matters where ghosts outnumber the atoms of a rank (small domains, many ranks)."""
        species, edge_i, edge_j = species.long(), edge_i.long(), edge_j.long()
        n_owned = species.shape[0] if halo is None or n_owned is None else n_owned
        if method == "analytic":
            return self._analytic(species, edge_i, edge_j, r_ij, weights, halo, n_owned)
        if method == "autograd":
            return self._autograd(species, edge_i, edge_j, r_ij, weights, halo, n_owned)
        raise ValueError(f"unknown method {method!r}: use one of {METHODS}")

    # ------------------------------------------------------------------------------------------
    def validate_inputs(self, species, edge_i, edge_j, r_ij, n_counted: int | None = None) -> None:
        """Raise a ValueError naming the problem when the inputs do not fit this model.

        Call it where inputs arrive, on the host arrays (torch tensors or numpy arrays, r_ij in
        any float type), once per neighbour list: it reads every value, which on a GPU would stall
        each step.
        """
        species, edge_i, edge_j, r_ij = map(torch.as_tensor, (species, edge_i, edge_j, r_ij))
        n_counted = species.shape[0] if n_counted is None else n_counted
        self._check_shapes(species, edge_i, edge_j, r_ij, n_counted)
        n_elements, n_atoms = len(self.config.elements), species.shape[0]
        bad = species[(species < 0) | (species >= n_elements)]
        if bad.numel():
            raise ValueError(
                f"element index {int(bad[0])} is outside this model's elements "
                f"{self.config.elements} (indices 0..{n_elements - 1}); map the "
                "structure's elements to the model's list first"
            )
        for name, index in (("edge_i", edge_i), ("edge_j", edge_j)):
            bad = index[(index < 0) | (index >= n_atoms)]
            if bad.numel():
                raise ValueError(f"{name} holds atom index {int(bad[0])}, outside 0..{n_atoms - 1} for {n_atoms} atoms")

    def check_layout(self, species, edge_i, edge_j, r_ij, n_counted: int) -> None:
        """Shapes, n_counted and dtype: metadata only, so free on any device and run on every call."""
        self._check_shapes(species, edge_i, edge_j, r_ij, n_counted)
        if r_ij.dtype != self.dtype:
            raise ValueError(f"r_ij is {r_ij.dtype} but the model is {self.dtype}; convert one of them")

    @staticmethod
    def _check_shapes(species, edge_i, edge_j, r_ij, n_counted: int) -> None:
        n_atoms, n_edges = species.shape[0], edge_i.shape[0]
        if species.dim() != 1 or edge_i.shape != (n_edges,) or edge_j.shape != (n_edges,) or r_ij.shape != (n_edges, 3):
            raise ValueError(
                f"inputs must be species [N], edge_i [E], edge_j [E], r_ij [E,3]; got "
                f"{tuple(species.shape)}, {tuple(edge_i.shape)}, {tuple(edge_j.shape)}, "
                f"{tuple(r_ij.shape)}"
            )
        if not 0 <= n_counted <= n_atoms:
            raise ValueError(f"n_counted={n_counted} must lie in 0..{n_atoms}")

    def edge_chunk(self, device: torch.device) -> int:
        """Edges per chunk of the analytic path (see ``Message``), the one place that decides it.

        On the CPU, eager, a [chunk, 3F] temporary stays in cache (``chunk_bytes``). On a GPU chunks
        only add kernel launches, so one chunk holds the whole system unless a temporary would
        exceed 1/64 of the card's memory (a dozen of them live at once in the backward). Compiled
        on the CPU, the fused loops keep their own data in cache, and chunks would only unroll into
        the compiled graph and fix its edge count: one chunk up to ``COMPILED_CPU_CHUNK_BYTES``.
        Exported ahead of time, one chunk of any size (``EXPORTED_MAX_EDGES``), since the package
        must serve every system its caller gives it."""
        if torch.compiler.is_exporting():
            return EXPORTED_MAX_EDGES
        bytes_per_edge = 3 * self.config.n_features * self.embedding.weight.element_size()
        if device.type == "cuda":
            budget = torch.cuda.get_device_properties(device).total_memory // 64
        elif torch.compiler.is_compiling():
            budget = COMPILED_CPU_CHUNK_BYTES
        else:
            budget = self.chunk_bytes
        return max(64, budget // bytes_per_edge)

    def _forward(self, species, edge_i, edge_j, r_ij, chunk, halo, n_owned):
        """Energies of all atoms [N] and the context the analytic backward needs (``PaiNNContext``)."""
        (d, u), geometry_ctx = EdgeGeometry.forward(r_ij)
        filters, filter_ctx = self.edge_filter(d)
        s = self.embedding(species)
        v = s.new_zeros(s.shape[0], 3, self.config.n_features)
        layer_ctx = []
        for layer, (message, update) in enumerate(zip(self.messages, self.updates)):
            (s, v), message_ctx = message(s, v, filters[layer], u, edge_i, edge_j, layer == 0, chunk)
            (s, v), update_ctx = update_rows(update, s, v, n_owned)
            layer_ctx.append(LayerContext(message_ctx, update_ctx))
            if halo is not None and layer < self.config.n_layers - 1:
                s, v = halo.forward(s, v)
        energies, readout_ctx = self.readout(s, species)
        repulsion_ctx = None
        if self.repulsion is not None:
            pair_energies, repulsion_ctx = self.repulsion(d, species, edge_i, edge_j)
            energies = energies.index_add(0, edge_i, pair_energies)
        return energies, PaiNNContext(geometry_ctx, filter_ctx, layer_ctx, readout_ctx, repulsion_ctx, v)

    def _analytic(self, species, edge_i, edge_j, r_ij, weights, halo, n_owned):
        energies, ctx = self._forward(species, edge_i, edge_j, r_ij, self.edge_chunk(r_ij.device), halo, n_owned)
        g_s = self.readout.backward(ctx.readout_ctx, weights)
        g_v = ctx.v.new_zeros(ctx.v.shape)
        g_u = r_ij.new_zeros(r_ij.shape)
        projected = 0
        for layer in reversed(range(self.config.n_layers)):
            message_ctx, update_ctx = ctx.layer_ctx[layer]
            if halo is not None and layer < self.config.n_layers - 1:
                g_s, g_v = halo.reverse(g_s, g_v)
            g_s, g_v = update_rows_backward(self.updates[layer], update_ctx, g_s, g_v, n_owned)
            g_s, g_v, projected_layer, g_u_layer = self.messages[layer].backward(
                message_ctx, g_s, g_v, need_input_grads=layer > 0
            )
            projected = projected + projected_layer
            g_u = g_u + g_u_layer
        g_d = self.edge_filter.backward(ctx.filter_ctx, projected)
        if ctx.repulsion_ctx is not None:
            g_d = g_d + self.repulsion.backward(ctx.repulsion_ctx, weights.index_select(0, edge_i))
        return energies, EdgeGeometry.backward(ctx.geometry_ctx, g_d, g_u)

    def _autograd(self, species, edge_i, edge_j, r_ij, weights, halo, n_owned):
        training = torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters())
        with torch.enable_grad():
            r = r_ij.detach().requires_grad_(True)
            # one chunk: autograd keeps every temporary anyway, and chunking only adds graph nodes
            energies = self._forward(species, edge_i, edge_j, r, max(1, edge_i.shape[0]), halo, n_owned)[0]
            (grad,) = torch.autograd.grad(energies, r, weights, create_graph=training)
        return (energies, grad) if training else (energies.detach(), grad)


def update_rows(update: Update, s: Tensor, v: Tensor, n: int):
    """``update`` on the first n rows of s [N,F], v [N,3,F]; the other rows pass unchanged."""
    if n == s.shape[0]:
        return update(s, v)
    (s_head, v_head), ctx = update(s[:n], v[:n])
    return (torch.cat((s_head, s[n:])), torch.cat((v_head, v[n:]))), ctx


def update_rows_backward(update: Update, ctx: UpdateContext, g_s: Tensor, g_v: Tensor, n: int):
    """The transpose of ``update_rows``: gradients of the passed rows pass unchanged."""
    if n == g_s.shape[0]:
        return update.backward(ctx, g_s, g_v)
    g_s_head, g_v_head = update.backward(ctx, g_s[:n], g_v[:n])
    return torch.cat((g_s_head, g_s[n:])), torch.cat((g_v_head, g_v[n:]))
