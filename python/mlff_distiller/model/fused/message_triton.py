"""The fused message kernels on a GPU, in Triton: ``message_cpu.cpp``'s operators for CUDA tensors.

Same operators, same arithmetic, same shapes (``message_cpu.cpp`` and ``blocks.Message`` have them):
one program per block of ``BLOCK_EDGES`` edges makes the block's filter rows from the radial basis
(an unrolled product over the K radial functions, in the inputs' precision: no TF32), its messages,
and adds them into the receivers (forward) or the senders (backward); the backward projects the
block's filter-gradient rows on [weight | bias] before it leaves. Nothing [E, 3F] is ever written
to memory.

The sums into atom rows go through atomic adds. The forward's are one per run of a block's
consecutive edges that share the receiver (a segmented scan in registers sums each run first):
LAMMPS's lists and ``graph.py``'s come sorted by receiver, so a block of 32 edges makes about two
atomic rows instead of 32 (any order gives the same sums; sorted edges give fewer, longer runs).
On an H100 that forward took 0.97 ms against 1.28 ms with an atomic add per edge, one layer of
8,232 waters (``results/h100_2026-12-05e/``). The backward's sums into the senders stay one atomic
add per edge: visiting the edges sorted by sender (an argsort per call) made it slower there.

Defined with ``torch.library.triton_op``, so torch.compile and AOTInductor compile the kernels into
the graph (a CUDA package of ``mliap/aoti`` carries them). Atomic adds make the sums' order, and so
their last bits, vary from run to run.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

# launch settings: edges per program, warps per program (benchmarks/gpu_model.py --tune measures others)
BLOCK_EDGES = 32
NUM_WARPS = 4


@triton.jit
def _filter_rows(rbf_ptr, weight_ptr, bias_ptr, fc, edges, edge_mask, f, f_mask, channel, F, K: tl.constexpr):
    """(rbf_e weight_c^T + bias_c) fc_e of channel c (0: s, 1: vv, 2: vs)  ->  [BLOCK_E, BLOCK_F]."""
    rows = channel * F + f
    acc = tl.load(bias_ptr + rows, mask=f_mask, other=0.0)[None, :] + tl.zeros_like(fc)[:, None]
    for k in tl.static_range(K):
        r = tl.load(rbf_ptr + edges * K + k, mask=edge_mask, other=0.0)
        w = tl.load(weight_ptr + rows * K + k, mask=f_mask, other=0.0)
        acc += r[:, None] * w[None, :]
    return acc * fc[:, None]


@triton.jit
def _add_runs(a, a_starts, b, b_starts):
    """The segmented sum's step: b's row starts a run, or adds to the run before it."""
    return tl.where(b_starts, b, a + b), a_starts | b_starts


@triton.jit
def _runs(keys_ptr, slots, n_slots, BLOCK_E: tl.constexpr):
    """Whether each of the block's slots [BLOCK_E] starts / ends a run of consecutive slots with the
    same key (atom) within the block."""
    lane = tl.arange(0, BLOCK_E)
    valid = slots < n_slots
    keys = tl.load(keys_ptr + slots, mask=valid, other=0)
    before = tl.load(keys_ptr + slots - 1, mask=valid & (lane > 0), other=-1)
    after = tl.load(keys_ptr + slots + 1, mask=(slots + 1 < n_slots) & (lane < BLOCK_E - 1), other=-1)
    return keys != before, keys != after


@triton.jit
def _add_into_rows(ptr, rows, starts, ends, values, mask):
    """ptr[rows] += values [BLOCK_E, BLOCK_F] (ptr: the rows' first feature, f lanes added), one
    atomic add per run: at its last slot, with the run's sum."""
    sums, _ = tl.associative_scan((values, tl.broadcast_to(starts[:, None], values.shape)), 0, _add_runs)
    tl.atomic_add(ptr + rows, sums, mask=mask & ends[:, None])


@triton.jit
def _edge_block(edge_i_ptr, edge_j_ptr, fc_ptr, n_edges, F, BLOCK_E: tl.constexpr, BLOCK_F: tl.constexpr):
    """This program's block of edges: their indices and masks, receivers i, senders j, cutoff fc."""
    edges = tl.program_id(0) * BLOCK_E + tl.arange(0, BLOCK_E)
    edge_mask = edges < n_edges
    f = tl.arange(0, BLOCK_F)
    f_mask = f < F
    mask = edge_mask[:, None] & f_mask[None, :]
    i = tl.load(edge_i_ptr + edges, mask=edge_mask, other=0)
    j = tl.load(edge_j_ptr + edges, mask=edge_mask, other=0)
    fc = tl.load(fc_ptr + edges, mask=edge_mask, other=0.0)
    return edges, edge_mask, f, f_mask, mask, i, j, fc


@triton.jit
def _message_forward_kernel(
    x_ptr, v_ptr, rbf_ptr, fc_ptr, weight_ptr, bias_ptr, u_ptr, edge_i_ptr, edge_j_ptr, ds_ptr, dv_ptr,
    n_edges, F,
    K: tl.constexpr, V_IS_ZERO: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_F: tl.constexpr,
):  # fmt: skip
    edges, edge_mask, f, f_mask, mask, i, j, fc = _edge_block(
        edge_i_ptr, edge_j_ptr, fc_ptr, n_edges, F, BLOCK_E, BLOCK_F
    )
    starts, ends = _runs(edge_i_ptr, edges, n_edges, BLOCK_E)
    x_j = x_ptr + j[:, None] * 3 * F + f[None, :]
    m_s = tl.load(x_j, mask=mask, other=0.0) * _filter_rows(
        rbf_ptr, weight_ptr, bias_ptr, fc, edges, edge_mask, f, f_mask, 0, F, K
    )
    _add_into_rows(ds_ptr, i[:, None] * F + f[None, :], starts, ends, m_s, mask)
    m_vs = tl.load(x_j + 2 * F, mask=mask, other=0.0) * _filter_rows(
        rbf_ptr, weight_ptr, bias_ptr, fc, edges, edge_mask, f, f_mask, 2, F, K
    )
    m_vv = tl.zeros_like(m_s)
    if not V_IS_ZERO:
        m_vv = tl.load(x_j + F, mask=mask, other=0.0) * _filter_rows(
            rbf_ptr, weight_ptr, bias_ptr, fc, edges, edge_mask, f, f_mask, 1, F, K
        )
    for xyz in tl.static_range(3):
        u = tl.load(u_ptr + edges * 3 + xyz, mask=edge_mask, other=0.0)
        d = m_vs * u[:, None]
        if not V_IS_ZERO:
            d += m_vv * tl.load(v_ptr + j[:, None] * 3 * F + xyz * F + f[None, :], mask=mask, other=0.0)
        _add_into_rows(dv_ptr, i[:, None] * 3 * F + xyz * F + f[None, :], starts, ends, d, mask)


@triton.jit
def _message_backward_kernel(
    grad_s_ptr, grad_v_ptr, x_ptr, v_ptr, rbf_ptr, fc_ptr, weight_ptr, bias_ptr, u_ptr, edge_i_ptr, edge_j_ptr,
    g_x_ptr, g_v_ptr, projected_ptr, g_u_ptr,
    n_edges, F,
    K: tl.constexpr, V_IS_ZERO: tl.constexpr, INPUT_GRADS: tl.constexpr, BLOCK_E: tl.constexpr,
    BLOCK_F: tl.constexpr,
):  # fmt: skip
    edges, edge_mask, f, f_mask, mask, i, j, fc = _edge_block(
        edge_i_ptr, edge_j_ptr, fc_ptr, n_edges, F, BLOCK_E, BLOCK_F
    )
    x_j = x_ptr + j[:, None] * 3 * F + f[None, :]
    x_s = tl.load(x_j, mask=mask, other=0.0)
    x_vv = tl.load(x_j + F, mask=mask, other=0.0)
    x_vs = tl.load(x_j + 2 * F, mask=mask, other=0.0)
    f_s = _filter_rows(rbf_ptr, weight_ptr, bias_ptr, fc, edges, edge_mask, f, f_mask, 0, F, K)
    f_vv = _filter_rows(rbf_ptr, weight_ptr, bias_ptr, fc, edges, edge_mask, f, f_mask, 1, F, K)
    f_vs = _filter_rows(rbf_ptr, weight_ptr, bias_ptr, fc, edges, edge_mask, f, f_mask, 2, F, K)
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
                tl.atomic_add(g_v_ptr + j[:, None] * 3 * F + xyz * F + f[None, :], m_vv * gv_i, mask=mask)
    # the filter gradient's rows (g_m * x_j), projected on [weight | bias] column by column
    r_s = gs_i * x_s
    r_vv = g_mvv * x_vv
    r_vs = g_mvs * x_vs
    for k in tl.static_range(K):
        w_s = tl.load(weight_ptr + f * K + k, mask=f_mask, other=0.0)
        w_vv = tl.load(weight_ptr + (F + f) * K + k, mask=f_mask, other=0.0)
        w_vs = tl.load(weight_ptr + (2 * F + f) * K + k, mask=f_mask, other=0.0)
        column = r_s * w_s[None, :] + r_vv * w_vv[None, :] + r_vs * w_vs[None, :]
        tl.store(projected_ptr + edges * (K + 1) + k, tl.sum(column, axis=1), mask=edge_mask)
    b_s = tl.load(bias_ptr + f, mask=f_mask, other=0.0)
    b_vv = tl.load(bias_ptr + F + f, mask=f_mask, other=0.0)
    b_vs = tl.load(bias_ptr + 2 * F + f, mask=f_mask, other=0.0)
    column = r_s * b_s[None, :] + r_vv * b_vv[None, :] + r_vs * b_vs[None, :]
    tl.store(projected_ptr + edges * (K + 1) + K, tl.sum(column, axis=1), mask=edge_mask)
    if INPUT_GRADS:
        g_x_j = g_x_ptr + j[:, None] * 3 * F + f[None, :]
        tl.atomic_add(g_x_j, gs_i * f_s, mask=mask)
        tl.atomic_add(g_x_j + F, g_mvv * f_vv, mask=mask)
        tl.atomic_add(g_x_j + 2 * F, g_mvs * f_vs, mask=mask)


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
        n_edges, F,
        K=weight.shape[1], V_IS_ZERO=v_is_zero, BLOCK_E=BLOCK_EDGES, BLOCK_F=triton.next_power_of_2(F),
        num_warps=NUM_WARPS,
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
        n_edges, F,
        K=K, V_IS_ZERO=v_is_zero, INPUT_GRADS=need_input_grads, BLOCK_E=BLOCK_EDGES,
        BLOCK_F=triton.next_power_of_2(F), num_warps=NUM_WARPS,
    )  # fmt: skip
    return g_x, g_v, projected, g_u
