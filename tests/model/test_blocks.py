"""Each block's analytic backward against autograd and against central finite differences (float64)."""

import pytest
import torch

from mlff_distiller.model.blocks import (
    CosineCutoff,
    EdgeFilter,
    EdgeGeometry,
    Message,
    RadialBasis,
    Readout,
    SiLUMLP,
    Update,
)
from mlff_distiller.model.priors import COULOMB_EV_A, ZBLRepulsion

N, E, F, K, CUTOFF = 7, 30, 8, 6, 5.0


def check_vjp(forward, analytic_vjp, inputs, atol=1e-8):
    """Compare the analytic vector-Jacobian product of ``forward`` (inputs -> tuple of outputs) with
    autograd's and with a central finite difference along a random direction."""
    inputs = [x.detach().clone().requires_grad_(True) for x in inputs]
    outputs = forward(*inputs)
    cotangents = [torch.randn_like(y) for y in outputs]
    analytic = analytic_vjp(*cotangents)
    reference = torch.autograd.grad(outputs, inputs, cotangents)
    for a, r in zip(analytic, reference):
        assert torch.allclose(a, r, rtol=1e-11, atol=1e-12), (a - r).abs().max()
    directions = [torch.randn_like(x) for x in inputs]
    h = 1e-6
    with torch.no_grad():
        plus = forward(*[x + h * dx for x, dx in zip(inputs, directions)])
        minus = forward(*[x - h * dx for x, dx in zip(inputs, directions)])
        fd = sum(((p - m) / (2 * h) * c).sum() for p, m, c in zip(plus, minus, cotangents))
    predicted = sum((a * dx).sum() for a, dx in zip(analytic, directions))
    assert abs(fd - predicted) < atol * max(1.0, abs(predicted)), (fd, predicted)


def distances():
    return torch.rand(E) * 4.5 + 0.4  # inside the cutoff, away from 0


def test_edge_geometry():
    r = torch.randn(E, 3) * 2

    def forward(r):
        return EdgeGeometry.forward(r)[0]

    ctx = EdgeGeometry.forward(r)[1]
    check_vjp(forward, lambda gd, gu: (EdgeGeometry.backward(ctx, gd, gu),), [r])


def test_radial_basis():
    rb, d = RadialBasis(K, CUTOFF), distances()
    ctx = rb.forward(d)[1]
    check_vjp(lambda d: (rb.forward(d)[0],), lambda g: (rb.backward(ctx, g),), [d])


def test_cosine_cutoff_inside_and_outside():
    cut = CosineCutoff(CUTOFF)
    d = torch.cat([distances(), torch.tensor([5.3, 6.0])])
    ctx = cut.forward(d)[1]
    check_vjp(lambda d: (cut.forward(d)[0],), lambda g: (cut.backward(ctx, g),), [d])
    assert torch.all(cut.forward(torch.tensor([5.0, 5.5]))[0] == 0)


def test_edge_filter():
    layers = 2
    filt = EdgeFilter(K, CUTOFF, layers, 3 * F)
    d = distances()
    filters, ctx = filt.forward(d)

    def vjp(*g):
        projected = sum(g_l @ f.projection() for f, g_l in zip(filters, g))
        return (filt.backward(ctx, projected),)

    check_vjp(lambda d: tuple(f.rows(slice(None)) for f in filt.forward(d)[0]), vjp, [d])


def test_silu_mlp():
    mlp = SiLUMLP(F, 2 * F, 3)
    x = torch.randn(N, F)
    ctx = mlp(x)[1]
    check_vjp(lambda x: (mlp(x)[0],), lambda g: (mlp.backward(ctx, g),), [x])


def graph():
    edge_i = torch.randint(0, N, (E,))
    edge_j = (edge_i + torch.randint(1, N, (E,))) % N
    u = torch.nn.functional.normalize(torch.randn(E, 3), dim=1)
    return edge_i, edge_j, u


@pytest.mark.parametrize("v_is_zero", [False, True])
@pytest.mark.parametrize("chunk", [7, 1000])
def test_message(v_is_zero, chunk):
    """The message block's backward, its filter gradient carried through the filter to the distances
    (the filter gradient only leaves the block projected on [A | b])."""
    torch.manual_seed(1)
    msg, edge_filter = Message(F).double(), EdgeFilter(K, CUTOFF, 1, 3 * F).double()
    edge_i, edge_j, u = graph()
    s, v, d = torch.randn(N, F), torch.randn(N, 3, F) * (0 if v_is_zero else 1), distances()

    def forward(*args):
        s, v_, d, u = (args[0], torch.zeros(N, 3, F), *args[1:]) if v_is_zero else args
        return msg(s, v_, edge_filter(d)[0][0], u, edge_i, edge_j, v_is_zero, chunk)[0]

    filters, filter_ctx = edge_filter(d)
    ctx = msg(s, v, filters[0], u, edge_i, edge_j, v_is_zero, chunk)[1]

    def vjp(g_s, g_v):
        g_s_in, g_v_in, projected, g_u = msg.backward(ctx, g_s, g_v)
        g_d = edge_filter.backward(filter_ctx, projected)
        return (g_s_in, g_d, g_u) if v_is_zero else (g_s_in, g_v_in, g_d, g_u)

    check_vjp(forward, vjp, [s, d, u] if v_is_zero else [s, v, d, u])


def test_message_without_input_grads_gives_same_filter_gradient():
    msg, edge_filter = Message(F).double(), EdgeFilter(K, CUTOFF, 1, 3 * F).double()
    edge_i, edge_j, u = graph()
    s, v, filt = torch.randn(N, F), torch.randn(N, 3, F), edge_filter(distances())[0][0]
    ctx = msg(s, v, filt, u, edge_i, edge_j, False, 5)[1]
    g_s, g_v = torch.randn(N, F), torch.randn(N, 3, F)
    full = msg.backward(ctx, g_s, g_v)
    partial = msg.backward(ctx, g_s, g_v, need_input_grads=False)
    assert partial[0] is None and partial[1] is None
    assert torch.equal(full[2], partial[2]) and torch.equal(full[3], partial[3])


def test_update():
    upd = Update(F).double()
    s, v = torch.randn(N, F), torch.randn(N, 3, F)
    ctx = upd(s, v)[1]
    check_vjp(lambda s, v: upd(s, v)[0], lambda gs, gv: upd.backward(ctx, gs, gv), [s, v])


def test_update_norm_is_smooth_at_zero_vectors():
    upd = Update(F).double()
    s, v = torch.randn(N, F), torch.zeros(N, 3, F)
    ctx = upd(s, v)[1]
    g = upd.backward(ctx, torch.randn(N, F), torch.randn(N, 3, F))
    assert all(torch.isfinite(x).all() for x in g)


def test_readout():
    ro = Readout(F, 3).double()
    with torch.no_grad():
        ro.shift.copy_(torch.tensor([0.3, -1.0, 2.0]))
        ro.scale.copy_(torch.tensor([1.5, 0.7, 1.1]))
    species = torch.randint(0, 3, (N,))
    s = torch.randn(N, F)
    ctx = ro(s, species)[1]
    check_vjp(lambda s: (ro(s, species)[0],), lambda g: (ro.backward(ctx, g),), [s])


def zbl_edges():
    """Edges between every pair of H C O S, at distances from 0.1 A to beyond the switch-off."""
    species = torch.tensor([0, 1, 2, 3])
    edge_i, edge_j = torch.meshgrid(torch.arange(4), torch.arange(4), indexing="ij")
    edge_i, edge_j = edge_i.flatten().repeat(4), edge_j.flatten().repeat(4)
    d = torch.rand(edge_i.shape[0]) * 2.4 + 0.1
    return species, edge_i, edge_j, d


def test_zbl_repulsion():
    zbl, (species, edge_i, edge_j, d) = ZBLRepulsion(["H", "C", "O", "S"]).double(), zbl_edges()
    energy, ctx = zbl(d, species, edge_i, edge_j)
    outside = d * zbl.pair_parameters(species, edge_i, edge_j)[2] >= 1
    assert outside.any() and (~outside).any()  # both branches are checked
    assert torch.equal(energy[outside], torch.zeros_like(energy[outside]))
    assert (energy[~outside] > 0).all()
    check_vjp(lambda d: (zbl(d, species, edge_i, edge_j)[0],), lambda g: (zbl.backward(ctx, g),), [d])


def test_zbl_repulsion_vanishes_smoothly_at_its_switch_off_and_is_coulomb_at_contact():
    zbl = ZBLRepulsion(["H", "C"]).double()
    species, edge_i, edge_j = torch.tensor([1, 0]), torch.tensor([0]), torch.tensor([1])
    rmax = 1.0 / float(zbl.pair_parameters(species, edge_i, edge_j)[2])
    for eps in (1e-2, 1e-3):
        d = torch.tensor([rmax - eps])
        energy, ctx = zbl(d, species, edge_i, edge_j)
        assert 0 < float(energy) < 1e3 * eps**3  # value, slope and curvature vanish at rmax
        assert 0 > float(zbl.derivative(ctx)) > -1e4 * eps**2
    # at contact the screening is ~1 (sum of the c_k) and the envelope 1: bare Coulomb, half per edge
    d = torch.tensor([1e-4])
    assert abs(2 * float(zbl(d, species, edge_i, edge_j)[0]) * float(d) / (6 * COULOMB_EV_A) - 1) < 1e-3
