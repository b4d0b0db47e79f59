"""The blocks of the PaiNN student, each with its forward and its analytic backward side by side.

Every block follows one convention, the way a ``torch.autograd.Function`` does:

* ``forward(...) -> (outputs, ctx)``: ``ctx`` holds what the backward needs, a NamedTuple defined
  just above the block (``<Block>Context``), its fields named as the forward's variables;
* ``backward(ctx, grad_outputs...) -> grad_inputs``: the vector-Jacobian product, written by hand.

The backward functions use only differentiable torch operations, so a loss on the analytic forces
can itself be back-propagated to the weights during training. Shapes: ``N`` atoms, ``E`` edges,
``F`` features, ``K`` radial functions; ``i``/``j`` index the receiving/sending atom of an edge.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from . import fused


# ----------------------------------------------------------------------------------------------
# Edge geometry
# ----------------------------------------------------------------------------------------------
class EdgeGeometryContext(NamedTuple):
    d: Tensor  # [E]
    u: Tensor  # [E,3]


class EdgeGeometry:
    """Length and direction of each edge vector.

    forward: r_ij [E,3] -> d [E], u [E,3] with d = |r_ij|, u = r_ij / d.
    """

    @staticmethod
    def forward(r_ij: Tensor):
        d = torch.linalg.vector_norm(r_ij, dim=1)
        u = r_ij / d[:, None]
        return (d, u), EdgeGeometryContext(d, u)

    @staticmethod
    def backward(ctx: EdgeGeometryContext, grad_d: Tensor, grad_u: Tensor) -> Tensor:
        """dL/dr = g_d u + (g_u - (g_u . u) u) / d  ->  [E,3]."""
        d, u = ctx.d, ctx.u
        radial = grad_d - (grad_u * u).sum(1) / d
        return torch.addcmul(radial[:, None] * u, grad_u, (1.0 / d)[:, None])


class RadialBasisContext(NamedTuple):
    arg: Tensor  # [E,K] w d
    sin: Tensor  # [E,K] sin(w d)
    inv_d: Tensor  # [E,1] 1 / d


class RadialBasis:
    """PaiNN's radial functions sin(n pi d / rc) / d, n = 1..K.

    forward: d [E] -> rbf [E,K].  backward: g_rbf [E,K] -> g_d [E].
    """

    def __init__(self, n_radial: int, cutoff: float):
        self.cutoff = cutoff
        self.n_radial = n_radial

    def frequencies(self, like: Tensor) -> Tensor:
        return torch.arange(1, self.n_radial + 1, dtype=like.dtype, device=like.device) * (math.pi / self.cutoff)

    def forward(self, d: Tensor):
        arg = d[:, None] * self.frequencies(d)
        inv_d = (1.0 / d)[:, None]
        sin = torch.sin(arg)
        return sin * inv_d, RadialBasisContext(arg, sin, inv_d)

    def derivative(self, ctx: RadialBasisContext) -> Tensor:
        """d rbf / d d  ->  [E,K]:  (w cos(w d) - sin(w d) / d) / d."""
        return (torch.cos(ctx.arg) * self.frequencies(ctx.arg) - ctx.sin * ctx.inv_d) * ctx.inv_d

    def backward(self, ctx: RadialBasisContext, grad_rbf: Tensor) -> Tensor:
        return (grad_rbf * self.derivative(ctx)).sum(1)


class CosineCutoffContext(NamedTuple):
    arg: Tensor  # [E] pi d / rc
    inside: Tensor  # [E] bool, d < rc


class CosineCutoff:
    """fc(d) = (cos(pi d / rc) + 1) / 2 inside the cutoff, 0 outside; smooth to first order at rc.

    forward: d [E] -> fc [E].  backward: g_fc [E] -> g_d [E].
    """

    def __init__(self, cutoff: float):
        self.cutoff = cutoff

    def forward(self, d: Tensor):
        inside = d < self.cutoff
        arg = d * (math.pi / self.cutoff)
        fc = torch.where(inside, 0.5 * (torch.cos(arg) + 1.0), torch.zeros_like(d))
        return fc, CosineCutoffContext(arg, inside)

    def derivative(self, ctx: CosineCutoffContext) -> Tensor:
        return torch.where(ctx.inside, (-0.5 * math.pi / self.cutoff) * torch.sin(ctx.arg), torch.zeros_like(ctx.arg))

    def backward(self, ctx: CosineCutoffContext, grad_fc: Tensor) -> Tensor:
        return grad_fc * self.derivative(ctx)


class LayerFilter(NamedTuple):
    """One layer's continuous filter W_e = (rbf_e A^T + b) fc_e [E,3F], kept as its factors: the
    [E,3F] rows are made where they are used, a chunk (or a fused kernel's tile) at a time, and
    never stored whole."""

    rbf: Tensor  # [E,K]
    fc: Tensor  # [E]
    weight: Tensor  # [3F,K] A
    bias: Tensor  # [3F] b

    def rows(self, c: slice) -> Tensor:
        """W_e of the edges in c  ->  [C,3F]."""
        return torch.addmm(self.bias, self.rbf[c], self.weight.t()) * self.fc[c, None]

    def projection(self) -> Tensor:
        """[A | b]  ->  [3F,K+1]: a filter gradient g [E,3F] leaves the message block as g @ [A | b]."""
        return torch.cat((self.weight, self.bias[:, None]), dim=1)


class EdgeFilterContext(NamedTuple):
    rbf: Tensor  # [E,K]
    rbf_ctx: RadialBasisContext
    fc: Tensor  # [E]
    fc_ctx: CosineCutoffContext


class EdgeFilter(nn.Module):
    """The continuous filters of every layer: W_e = (rbf(d_e) A_l + b_l) * fc(d_e).

    forward: d [E] -> list of L ``LayerFilter`` (each [E,3F] when made).
    The backward is split in two so no layer ever holds a full [E,3F] gradient: the message block
    projects its filter gradient on ``LayerFilter.projection`` = [A_l | b_l] chunk by chunk, giving
    [E,K+1]; ``backward(ctx, projected)`` turns the sum of those over layers into g_d [E]. Because fc
    multiplies the whole filter, every edge term, the direction term included, vanishes
    smoothly at the cutoff.
    """

    def __init__(self, n_radial: int, cutoff: float, n_layers: int, n_per_layer: int):
        super().__init__()
        self.radial = RadialBasis(n_radial, cutoff)
        self.cutoff_fn = CosineCutoff(cutoff)
        self.n_per_layer = n_per_layer
        self.linear = nn.Linear(n_radial, n_layers * n_per_layer)

    def forward(self, d: Tensor):
        rbf, rbf_ctx = self.radial.forward(d)
        fc, fc_ctx = self.cutoff_fn.forward(d)
        n_layers = self.linear.out_features // self.n_per_layer
        filters = [
            LayerFilter(rbf, fc, self.linear.weight[rows], self.linear.bias[rows])
            for rows in map(self._rows, range(n_layers))
        ]
        return filters, EdgeFilterContext(rbf, rbf_ctx, fc, fc_ctx)

    def _rows(self, layer: int) -> slice:
        return slice(layer * self.n_per_layer, (layer + 1) * self.n_per_layer)

    def backward(self, ctx: EdgeFilterContext, projected: Tensor) -> Tensor:
        rbf, fc = ctx.rbf, ctx.fc
        g_pre_rbf, g_bias = projected[:, :-1], projected[:, -1]
        # d filt / d d = (rbf' A) fc + (rbf A + b) fc'
        g_fc = (g_pre_rbf * rbf).sum(1) + g_bias
        g_d_rbf = (g_pre_rbf * self.radial.derivative(ctx.rbf_ctx)).sum(1)
        return torch.addcmul(g_fc * self.cutoff_fn.derivative(ctx.fc_ctx), g_d_rbf, fc)


# ----------------------------------------------------------------------------------------------
# Per-atom networks
# ----------------------------------------------------------------------------------------------
class SiLUMLPContext(NamedTuple):
    z: Tensor  # [N,hidden] W1 x + b1
    sig: Tensor  # [N,hidden] sigmoid(z)


class SiLUMLP(nn.Module):
    """Dense - SiLU - Dense.

    forward: x [N,Fin] -> y [N,Fout],  y = W2 silu(W1 x + b1) + b2.
    backward: g_y [N,Fout] -> g_x [N,Fin],  g_x = ((g_y W2) * silu'(z)) W1.
    """

    def __init__(self, n_in: int, n_hidden: int, n_out: int):
        super().__init__()
        self.inner = nn.Linear(n_in, n_hidden)
        self.outer = nn.Linear(n_hidden, n_out)

    def forward(self, x: Tensor):
        z = torch.addmm(self.inner.bias, x, self.inner.weight.t())
        sig = torch.sigmoid(z)
        y = torch.addmm(self.outer.bias, z * sig, self.outer.weight.t())
        return y, SiLUMLPContext(z, sig)

    def backward(self, ctx: SiLUMLPContext, grad_y: Tensor) -> Tensor:
        z, sig = ctx.z, ctx.sig
        # silu'(z) = sig (1 + z (1 - sig))
        dsilu = sig * (1.0 + z * (1.0 - sig))
        return ((grad_y @ self.outer.weight) * dsilu) @ self.inner.weight


# ----------------------------------------------------------------------------------------------
# PaiNN interaction: message and update
# ----------------------------------------------------------------------------------------------
def xyz_dot(a: Tensor, b: Tensor) -> Tensor:
    """sum_x a[:, x] * b[:, x] for [n,3,F] tensors (b may broadcast, e.g. [n,3,1]) -> [n,F].
    Three fused multiply-adds run faster on CPU than a strided reduction over the middle axis."""
    return torch.addcmul(torch.addcmul(a[:, 0] * b[:, 0], a[:, 1], b[:, 1]), a[:, 2], b[:, 2])


def edge_chunks(n_edges: int, chunk: int):
    """Slices covering 0..n_edges in pieces of ``chunk``: the per-edge temporaries of one piece
    stay in cache and are reused, instead of streaming [E,3,F] arrays through memory."""
    if n_edges <= chunk:  # not range(): under torch.compile it would fix n_edges, and each new size recompile
        return [slice(0, n_edges)]
    return [slice(a, min(a + chunk, n_edges)) for a in range(0, n_edges, chunk)]


class MessageContext(NamedTuple):
    x: Tensor  # [N,3F] phi(s)
    phi_ctx: SiLUMLPContext
    filt: LayerFilter  # this layer's edge filter
    v: Tensor  # [N,3,F] the input vectors
    u: Tensor  # [E,3]
    edge_i: Tensor  # [E]
    edge_j: Tensor  # [E]
    v_is_zero: bool
    chunk: int  # edges per chunk


class Message(nn.Module):
    """PaiNN message block: every atom i gathers from its senders j over edges e = (i, j).

    m_e = phi(s_j) * W_e, split in three [E,F] channels (m_s, m_vv, m_vs), where W_e is this
    layer's edge filter (``LayerFilter``).
        ds_i = sum_e m_s
        dv_i = sum_e m_vv v_j + m_vs u_e
    forward: s [N,F], v [N,3,F], filt (LayerFilter, [E,3F]), u [E,3], edge_i [E], edge_j [E]
             -> s + ds [N,F], v + dv [N,3,F]
    backward: g_s, g_v (on the outputs)
              -> g_s, g_v (on the inputs), g_filt projected on the filter's [A | b] [E,K+1], g_u [E,3].
    The edge sums run fused (``fused.applies`` decides) or eagerly in chunks (``message_sums``, the
    reference); either way nothing per edge is kept for the backward, which recomputes the
    messages from the per-atom x = phi(s) and the filter's factors.
    ``v_is_zero`` (first layer) drops the terms that vanish when all v are 0.
    """

    def __init__(self, n_features: int):
        super().__init__()
        self.n_features = n_features
        self.phi = SiLUMLP(n_features, n_features, 3 * n_features)

    def forward(self, s, v, filt, u, edge_i, edge_j, v_is_zero: bool = False, chunk: int = 1 << 30):
        x, phi_ctx = self.phi(s)
        if fused.applies(x, v, *filt, u):
            ds, dv = fused.message_sums(x, v, filt, u, edge_i, edge_j, v_is_zero)
        else:
            ds, dv = self.message_sums(x, v, filt, u, edge_i, edge_j, v_is_zero, chunk)
        return (s + ds, v + dv), MessageContext(x, phi_ctx, filt, v, u, edge_i, edge_j, v_is_zero, chunk)

    def message_sums(self, x, v, filt, u, edge_i, edge_j, v_is_zero: bool, chunk: int):
        """ds [N,F], dv [N,3,F], eagerly, chunk by chunk: the reference of ``fused.message_sums``."""
        F = self.n_features
        ds, dv = x.new_zeros(x.shape[0], F), torch.zeros_like(v)
        for c in edge_chunks(edge_i.shape[0], chunk):
            i, j = edge_i[c], edge_j[c]
            m = x.index_select(0, j) * filt.rows(c)
            dv_e = m[:, None, 2 * F :] * u[c, :, None]
            if not v_is_zero:
                dv_e = torch.addcmul(dv_e, m[:, None, F : 2 * F], v.index_select(0, j))
            ds.index_add_(0, i, m[:, :F])
            dv.index_add_(0, i, dv_e)
        return ds, dv

    def backward(self, ctx: MessageContext, grad_s, grad_v, need_input_grads: bool = True):
        """Returns (g_s_in, g_v_in, projected g_filt, g_u); g_s_in, g_v_in are None when not needed."""
        edge_args = (ctx.x, ctx.v, ctx.filt, ctx.u, ctx.edge_i, ctx.edge_j, ctx.v_is_zero)
        if fused.applies(grad_s, grad_v, ctx.x, ctx.v, *ctx.filt, ctx.u):
            g_x, g_v_acc, projected, g_u = fused.message_sums_backward(grad_s, grad_v, *edge_args, need_input_grads)
        else:
            g_x, g_v_acc, projected, g_u = self.message_sums_backward(
                grad_s, grad_v, *edge_args, need_input_grads, ctx.chunk
            )
        if not need_input_grads:
            return None, None, projected, g_u
        g_s_in = grad_s + self.phi.backward(ctx.phi_ctx, g_x)
        g_v_in = grad_v if ctx.v_is_zero else grad_v + g_v_acc
        return g_s_in, g_v_in, projected, g_u

    def message_sums_backward(self, grad_s, grad_v, x, v, filt, u, edge_i, edge_j, v_is_zero, need_input_grads, chunk):
        """The transpose of ``message_sums``, eagerly: g_x [N,3F] and g_v [N,3,F] summed into the
        senders (None unless ``need_input_grads``; g_v also None when ``v_is_zero``), g_filt projected
        on the filter's [A | b] [E,K+1], g_u [E,3]. The reference of ``fused.message_sums_backward``."""
        F = self.n_features
        filter_weights = filt.projection()
        g_x = torch.zeros_like(x) if need_input_grads else None
        g_v_acc = torch.zeros_like(v) if need_input_grads and not v_is_zero else None
        projected, g_u = [], []
        for c in edge_chunks(edge_i.shape[0], chunk):
            i, j, f = edge_i[c], edge_j[c], filt.rows(c)
            x_j = x.index_select(0, j)
            gv_i = grad_v.index_select(0, i)  # [C,3,F]
            m_vs = x_j[:, 2 * F :] * f[:, 2 * F :]
            g_mvs = xyz_dot(gv_i, u[c, :, None])
            g_u.append((gv_i * m_vs[:, None, :]).sum(2))
            if v_is_zero:
                g_mvv = torch.zeros_like(g_mvs)
            else:
                g_mvv = xyz_dot(gv_i, v.index_select(0, j))
            g_m = torch.cat((grad_s.index_select(0, i), g_mvv, g_mvs), dim=1)
            projected.append((g_m * x_j) @ filter_weights)
            if need_input_grads:
                g_x.index_add_(0, j, g_m * f)
                if not v_is_zero:
                    m_vv = x_j[:, F : 2 * F] * f[:, F : 2 * F]
                    g_v_acc.index_add_(0, j, m_vv[:, None, :] * gv_i)
        return g_x, g_v_acc, torch.cat(projected), torch.cat(g_u)


class UpdateContext(NamedTuple):
    Uv: Tensor  # [N,3,F]
    Vv: Tensor  # [N,3,F]
    norm: Tensor  # [N,F]
    dot: Tensor  # [N,F] <Uv, Vv>
    a_vv: Tensor  # [N,F]
    a_sv: Tensor  # [N,F]
    mlp_ctx: SiLUMLPContext


class Update(nn.Module):
    """PaiNN update block, per atom.

        Uv = v U, Vv = v V, n = sqrt(|Vv|^2 + eps)
        (a_vv, a_sv, a_ss) = MLP([s, n])
        s' = s + a_sv <Uv, Vv> + a_ss,   v' = v + a_vv Uv
    forward: s [N,F], v [N,3,F] -> s' [N,F], v' [N,3,F].
    backward: g_s', g_v' -> g_s, g_v.
    """

    def __init__(self, n_features: int, epsilon: float = 1e-8):
        super().__init__()
        self.n_features = n_features
        self.epsilon = epsilon
        self.U = nn.Linear(n_features, n_features, bias=False)
        self.V = nn.Linear(n_features, n_features, bias=False)
        self.mlp = SiLUMLP(2 * n_features, n_features, 3 * n_features)

    def forward(self, s, v):
        F = self.n_features
        Uv = v @ self.U.weight.t()
        Vv = v @ self.V.weight.t()
        norm = torch.sqrt(xyz_dot(Vv, Vv) + self.epsilon)
        a, mlp_ctx = self.mlp(torch.cat((s, norm), dim=1))
        a_vv, a_sv, a_ss = a[:, :F], a[:, F : 2 * F], a[:, 2 * F :]
        dot = xyz_dot(Uv, Vv)
        s_out = s + torch.addcmul(a_ss, a_sv, dot)
        v_out = torch.addcmul(v, a_vv[:, None, :], Uv)
        return (s_out, v_out), UpdateContext(Uv, Vv, norm, dot, a_vv, a_sv, mlp_ctx)

    def backward(self, ctx: UpdateContext, grad_s, grad_v):
        F = self.n_features
        Uv, Vv, a_vv = ctx.Uv, ctx.Vv, ctx.a_vv
        g_a = torch.cat((xyz_dot(grad_v, Uv), grad_s * ctx.dot, grad_s), dim=1)
        g_h = self.mlp.backward(ctx.mlp_ctx, g_a)
        g_dot = (grad_s * ctx.a_sv)[:, None, :]
        g_Uv = torch.addcmul(g_dot * Vv, grad_v, a_vv[:, None, :])
        g_Vv = torch.addcmul(g_dot * Uv, Vv, (g_h[:, F:] / ctx.norm)[:, None, :])
        g_v = grad_v + g_Uv @ self.U.weight + g_Vv @ self.V.weight
        return grad_s + g_h[:, :F], g_v


class ReadoutContext(NamedTuple):
    scale: Tensor  # [N] scale[z_a]
    mlp_ctx: SiLUMLPContext


class Readout(nn.Module):
    """Per-atom energy: E_a = scale[z_a] * MLP(s_a) + shift[z_a].

    forward: s [N,F], species [N] -> energies [N].  backward: g_E [N] -> g_s [N,F].
    """

    def __init__(self, n_features: int, n_elements: int):
        super().__init__()
        self.mlp = SiLUMLP(n_features, n_features // 2, 1)
        self.register_buffer("shift", torch.zeros(n_elements))
        self.register_buffer("scale", torch.ones(n_elements))

    def forward(self, s, species):
        y, mlp_ctx = self.mlp(s)
        scale = self.scale.index_select(0, species)
        energies = torch.addcmul(self.shift.index_select(0, species), scale, y[:, 0])
        return energies, ReadoutContext(scale, mlp_ctx)

    def backward(self, ctx: ReadoutContext, grad_energies):
        return self.mlp.backward(ctx.mlp_ctx, (grad_energies * ctx.scale)[:, None])
