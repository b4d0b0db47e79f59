"""The fused message kernels on a GPU, in Triton: ``message_cpu.cpp``'s operators for CUDA tensors.

Same operators, same arithmetic, same shapes (``message_cpu.cpp`` and ``blocks.Message`` have them):
one program per block of ``BLOCK_EDGES`` edges loads the block's radial basis rows once, makes its
filter rows as one matrix product per channel (``tl.dot``, in the inputs' precision: no TF32), its
messages, and adds them into the receivers (forward) or the senders (backward); the backward
projects the block's filter-gradient rows on [weight | bias] with the same products transposed.
Nothing [E, 3F] is ever written to memory.

The sums are atomic adds, and ``_add_rows`` makes them few where edges come sorted by receiver, as
neighbour lists give them: the rows of a block that go to the block's first atom, and those that go
to its last, are summed in the block first and added once (about two atomic rows per block instead
of 32 for water's ~50 edges per atom). Any order gives the same sums.

Defined with ``torch.library.triton_op``, so torch.compile and AOTInductor compile the kernels into
the graph (a CUDA package of ``mliap/aoti`` carries them). Atomic adds make the sums' order, and so
their last bits, vary from run to run.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

BLOCK_EDGES = 32
# tl.dot's operands have at least 16 rows and columns: smaller feature or radial sizes are padded
MIN_DOT = 16


@triton.jit
def _weight_tile(weight_ptr, f, f_mask, k, k_mask, channel, F, K):
    """weight_c[f, k] of channel c (0: s, 1: vv, 2: vs)  ->  [BLOCK_F, BLOCK_K] (0 where padded)."""
    rows = channel * F + f
    return tl.load(weight_ptr + rows[:, None] * K + k[None, :], mask=f_mask[:, None] & k_mask[None, :], other=0.0)


@triton.jit
def _filter_rows(rbf, weight_ptr, bias_ptr, fc, f, f_mask, k, k_mask, channel, F, K, PRECISION: tl.constexpr):
    """(rbf_e weight_c^T + bias_c) fc_e of channel c  ->  [BLOCK_E, BLOCK_F]; ``rbf`` [BLOCK_E, BLOCK_K]."""
    weight = _weight_tile(weight_ptr, f, f_mask, k, k_mask, channel, F, K)
    bias = tl.load(bias_ptr + channel * F + f, mask=f_mask, other=0.0)
    return (tl.dot(rbf, tl.trans(weight), input_precision=PRECISION) + bias[None, :]) * fc[:, None]


@triton.jit
def _edge_block(
    rbf_ptr, edge_i_ptr, edge_j_ptr, fc_ptr, n_edges, F, K,
    BLOCK_E: tl.constexpr, BLOCK_F: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """This program's block of edges: their indices and masks, feature and radial indices and masks,
    receivers i, senders j, cutoff fc and radial basis rows [BLOCK_E, BLOCK_K]."""
    edges = tl.program_id(0) * BLOCK_E + tl.arange(0, BLOCK_E)
    edge_mask = edges < n_edges
    f = tl.arange(0, BLOCK_F)
    f_mask = f < F
    k = tl.arange(0, BLOCK_K)
    k_mask = k < K
    mask = edge_mask[:, None] & f_mask[None, :]
    i = tl.load(edge_i_ptr + edges, mask=edge_mask, other=0)
    j = tl.load(edge_j_ptr + edges, mask=edge_mask, other=0)
    fc = tl.load(fc_ptr + edges, mask=edge_mask, other=0.0)
    rbf = tl.load(rbf_ptr + edges[:, None] * K + k[None, :], mask=edge_mask[:, None] & k_mask[None, :], other=0.0)
    return edges, edge_mask, f, f_mask, k, k_mask, mask, i, j, fc, rbf


@triton.jit
def _add_summed_rows(ptr, atom, rows, values, f, f_mask, row_stride):
    """Atomically add the sum of the ``rows`` of ``values`` into row ``atom`` of ``ptr`` (none if no rows)."""
    summed = rows[:, None] & f_mask[None, :]
    row_sum = tl.sum(tl.where(summed, values, 0.0), axis=0)
    tl.atomic_add(ptr + atom * row_stride + f, row_sum, mask=tl.sum(summed.to(tl.int32), axis=0) > 0)


@triton.jit
def _add_rows(ptr, atoms, values, edge_mask, f, f_mask, row_stride, BLOCK_E: tl.constexpr):
    """Atomically add each edge's row of ``values`` [BLOCK_E, BLOCK_F] into row ``atoms[e]`` of
    ``ptr``: the rows for the block's first atom summed first (one atomic row), likewise those for its
    last atom, the others one by one."""
    lane = tl.arange(0, BLOCK_E)
    first = tl.sum(tl.where(lane == 0, atoms, 0), axis=0)
    last = tl.sum(tl.where(lane == BLOCK_E - 1, atoms, 0), axis=0)
    to_first = edge_mask & (atoms == first)
    to_last = edge_mask & (atoms == last) & (last != first)
    _add_summed_rows(ptr, first, to_first, values, f, f_mask, row_stride)
    _add_summed_rows(ptr, last, to_last, values, f, f_mask, row_stride)
    others = edge_mask & (atoms != first) & (atoms != last)
    tl.atomic_add(ptr + atoms[:, None] * row_stride + f[None, :], values, mask=others[:, None] & f_mask[None, :])


@triton.jit
def _message_forward_kernel(
    x_ptr, v_ptr, rbf_ptr, fc_ptr, weight_ptr, bias_ptr, u_ptr, edge_i_ptr, edge_j_ptr, ds_ptr, dv_ptr,
    n_edges, F, K,
    V_IS_ZERO: tl.constexpr, PRECISION: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_F: tl.constexpr,
    BLOCK_K: tl.constexpr,
):  # fmt: skip
    edges, edge_mask, f, f_mask, k, k_mask, mask, i, j, fc, rbf = _edge_block(
        rbf_ptr, edge_i_ptr, edge_j_ptr, fc_ptr, n_edges, F, K, BLOCK_E, BLOCK_F, BLOCK_K
    )
    x_j = x_ptr + j[:, None] * 3 * F + f[None, :]
    m_s = tl.load(x_j, mask=mask, other=0.0) * _filter_rows(
        rbf, weight_ptr, bias_ptr, fc, f, f_mask, k, k_mask, 0, F, K, PRECISION
    )
    _add_rows(ds_ptr, i, m_s, edge_mask, f, f_mask, F, BLOCK_E)
    m_vs = tl.load(x_j + 2 * F, mask=mask, other=0.0) * _filter_rows(
        rbf, weight_ptr, bias_ptr, fc, f, f_mask, k, k_mask, 2, F, K, PRECISION
    )
    m_vv = tl.zeros_like(m_s)
    if not V_IS_ZERO:
        m_vv = tl.load(x_j + F, mask=mask, other=0.0) * _filter_rows(
            rbf, weight_ptr, bias_ptr, fc, f, f_mask, k, k_mask, 1, F, K, PRECISION
        )
    for xyz in tl.static_range(3):
        u = tl.load(u_ptr + edges * 3 + xyz, mask=edge_mask, other=0.0)
        d = m_vs * u[:, None]
        if not V_IS_ZERO:
            d += m_vv * tl.load(v_ptr + j[:, None] * 3 * F + xyz * F + f[None, :], mask=mask, other=0.0)
        _add_rows(dv_ptr + xyz * F, i, d, edge_mask, f, f_mask, 3 * F, BLOCK_E)


@triton.jit
def _message_backward_kernel(
    grad_s_ptr, grad_v_ptr, x_ptr, v_ptr, rbf_ptr, fc_ptr, weight_ptr, bias_ptr, u_ptr, edge_i_ptr, edge_j_ptr,
    g_x_ptr, g_v_ptr, projected_ptr, g_u_ptr,
    n_edges, F, K,
    V_IS_ZERO: tl.constexpr, INPUT_GRADS: tl.constexpr, PRECISION: tl.constexpr, BLOCK_E: tl.constexpr,
    BLOCK_F: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    edges, edge_mask, f, f_mask, k, k_mask, mask, i, j, fc, rbf = _edge_block(
        rbf_ptr, edge_i_ptr, edge_j_ptr, fc_ptr, n_edges, F, K, BLOCK_E, BLOCK_F, BLOCK_K
    )
    x_j = x_ptr + j[:, None] * 3 * F + f[None, :]
    x_s = tl.load(x_j, mask=mask, other=0.0)
    x_vv = tl.load(x_j + F, mask=mask, other=0.0)
    x_vs = tl.load(x_j + 2 * F, mask=mask, other=0.0)
    f_s = _filter_rows(rbf, weight_ptr, bias_ptr, fc, f, f_mask, k, k_mask, 0, F, K, PRECISION)
    f_vv = _filter_rows(rbf, weight_ptr, bias_ptr, fc, f, f_mask, k, k_mask, 1, F, K, PRECISION)
    f_vs = _filter_rows(rbf, weight_ptr, bias_ptr, fc, f, f_mask, k, k_mask, 2, F, K, PRECISION)
    gs_i = tl.load(grad_s_ptr + i[:, None] * F + f[None, :], mask=mask, other=0.0)
    m_vs = x_vs * f_vs
    m_vv = x_vv * f_vv
    g_mvs = tl.zeros_like(x_s)
    g_mvv = tl.zeros_like(x_s)
    for xyz in tl.static_range(3):
        gv_i = tl.load(grad_v_ptr + i[:, None] * 3 * F + xyz * F + f[None, :], mask=mask, other=0.0)
        u = tl.load(u_ptr + edges * 3 + xyz, mask=edge_mask, other=0.0)
        g_mvs += gv_i * u[:, None]
        tl.store(g_u_ptr + edges * 3 + xyz, tl.sum(gv_i * m_vs, axis=1), mask=edge_mask)
        if not V_IS_ZERO:
            g_mvv += gv_i * tl.load(v_ptr + j[:, None] * 3 * F + xyz * F + f[None, :], mask=mask, other=0.0)
            if INPUT_GRADS:
                _add_rows(g_v_ptr + xyz * F, j, m_vv * gv_i, edge_mask, f, f_mask, 3 * F, BLOCK_E)
    # the filter gradient's rows (g_m * x_j), projected on [weight | bias]
    r_s = gs_i * x_s
    r_vv = g_mvv * x_vv
    r_vs = g_mvs * x_vs
    on_weight = tl.dot(r_s, _weight_tile(weight_ptr, f, f_mask, k, k_mask, 0, F, K), input_precision=PRECISION)
    on_weight += tl.dot(r_vv, _weight_tile(weight_ptr, f, f_mask, k, k_mask, 1, F, K), input_precision=PRECISION)
    on_weight += tl.dot(r_vs, _weight_tile(weight_ptr, f, f_mask, k, k_mask, 2, F, K), input_precision=PRECISION)
    rows = projected_ptr + edges[:, None] * (K + 1)
    tl.store(rows + k[None, :], on_weight, mask=edge_mask[:, None] & k_mask[None, :])
    b_s = tl.load(bias_ptr + f, mask=f_mask, other=0.0)
    b_vv = tl.load(bias_ptr + F + f, mask=f_mask, other=0.0)
    b_vs = tl.load(bias_ptr + 2 * F + f, mask=f_mask, other=0.0)
    on_bias = tl.sum(r_s * b_s[None, :] + r_vv * b_vv[None, :] + r_vs * b_vs[None, :], axis=1)
    tl.store(projected_ptr + edges * (K + 1) + K, on_bias, mask=edge_mask)
    if INPUT_GRADS:
        _add_rows(g_x_ptr, j, gs_i * f_s, edge_mask, f, f_mask, 3 * F, BLOCK_E)
        _add_rows(g_x_ptr + F, j, g_mvv * f_vv, edge_mask, f, f_mask, 3 * F, BLOCK_E)
        _add_rows(g_x_ptr + 2 * F, j, g_mvs * f_vs, edge_mask, f, f_mask, 3 * F, BLOCK_E)


def _sizes(x: Tensor, weight: Tensor) -> dict:
    """The kernels' compile-time block sizes and product precision for these inputs."""
    F, K = x.shape[1] // 3, weight.shape[1]
    return dict(
        # float32 products as float32 (no TF32), float64 as float64
        PRECISION="ieee",
        BLOCK_E=BLOCK_EDGES,
        BLOCK_F=max(MIN_DOT, triton.next_power_of_2(F)),
        BLOCK_K=max(MIN_DOT, triton.next_power_of_2(K)),
    )


def _blocks(n_edges) -> tuple[int]:
    return (max(1, triton.cdiv(n_edges, BLOCK_EDGES)),)


@torch.library.triton_op("mlff_triton::message_forward", mutates_args=())
def message_forward(
    x: Tensor,
    v: Tensor,
    rbf: Tensor,
    fc: Tensor,
    weight: Tensor,
    bias: Tensor,
    u: Tensor,
    edge_i: Tensor,
    edge_j: Tensor,
    v_is_zero: bool,
) -> tuple[Tensor, Tensor]:
    """ds [N,F], dv [N,3,F] (``mlff_fused::message_forward``, for CUDA tensors)."""
    n_atoms, F = x.shape[0], x.shape[1] // 3
    ds, dv = x.new_zeros(n_atoms, F), x.new_zeros(n_atoms, 3, F)
    n_edges = edge_i.shape[0]
    torch.library.wrap_triton(_message_forward_kernel)[_blocks(n_edges)](
        x.contiguous(), v.contiguous(), rbf.contiguous(), fc.contiguous(), weight.contiguous(), bias.contiguous(),
        u.contiguous(), edge_i.contiguous(), edge_j.contiguous(), ds, dv,
        n_edges, F, weight.shape[1],
        V_IS_ZERO=v_is_zero, **_sizes(x, weight),
    )  # fmt: skip
    return ds, dv


@torch.library.triton_op("mlff_triton::message_backward", mutates_args=())
def message_backward(
    grad_s: Tensor,
    grad_v: Tensor,
    x: Tensor,
    v: Tensor,
    rbf: Tensor,
    fc: Tensor,
    weight: Tensor,
    bias: Tensor,
    u: Tensor,
    edge_i: Tensor,
    edge_j: Tensor,
    v_is_zero: bool,
    need_input_grads: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """g_x [N,3F], g_v [N,3,F] (0 rows unless need_input_grads), projected [E,K+1], g_u [E,3]
    (``mlff_fused::message_backward``, for CUDA tensors)."""
    n_atoms, F = x.shape[0], x.shape[1] // 3
    n_edges, K = edge_i.shape[0], weight.shape[1]
    n_summed = n_atoms if need_input_grads else 0
    g_x, g_v = x.new_zeros(n_summed, 3 * F), x.new_zeros(n_summed, 3, F)
    projected, g_u = x.new_empty(n_edges, K + 1), x.new_empty(n_edges, 3)
    torch.library.wrap_triton(_message_backward_kernel)[_blocks(n_edges)](
        grad_s.contiguous(), grad_v.contiguous(), x.contiguous(), v.contiguous(), rbf.contiguous(),
        fc.contiguous(), weight.contiguous(), bias.contiguous(), u.contiguous(), edge_i.contiguous(),
        edge_j.contiguous(), g_x, g_v, projected, g_u,
        n_edges, F, K,
        V_IS_ZERO=v_is_zero, INPUT_GRADS=need_input_grads, **_sizes(x, weight),
    )  # fmt: skip
    return g_x, g_v, projected, g_u
