"""The fused message kernels (model/fused) against the eager reference, autograd and finite
differences; the decision of when they run."""

import sys
from pathlib import Path

import pytest
import torch

from mlff_distiller.model import fused
from mlff_distiller.model.blocks import EdgeFilter, Message
from mlff_distiller.model.graph import graph_from_atoms

from model_cases import make_model, structures, water_box

needs_library = pytest.mark.skipif(fused.UNAVAILABLE is not None, reason=f"fused kernels: {fused.UNAVAILABLE}")
N, F, K, CUTOFF = 11, 8, 6, 5.0


def test_setup_built_the_library():
    """An environment made by scripts/setup.sh has the kernels: CI cannot skip them unnoticed."""
    if not (Path(sys.prefix) / ".setup-complete").exists():
        pytest.skip("not the environment of scripts/setup.sh")
    assert fused.UNAVAILABLE is None


def message_case(n_edges: int, dtype, seed: int = 0):
    """A message block and random inputs: repeated and one-way edges, atoms without edges."""
    torch.manual_seed(seed)
    msg, edge_filter = Message(F).to(dtype), EdgeFilter(K, CUTOFF, 1, 3 * F).to(dtype)
    msg.requires_grad_(False), edge_filter.requires_grad_(False)
    edge_i, edge_j = torch.randint(0, N - 2, (n_edges,)), torch.randint(0, N, (n_edges,))
    d = torch.rand(n_edges, dtype=dtype) * 5.5 + 0.3  # some beyond the cutoff
    u = torch.nn.functional.normalize(torch.randn(n_edges, 3, dtype=dtype), dim=1)
    x, v = torch.randn(N, 3 * F, dtype=dtype), torch.randn(N, 3, F, dtype=dtype)
    return msg, edge_filter, (x, v, d, u, edge_i, edge_j)


def both_paths(msg, edge_filter, x, v, d, u, edge_i, edge_j, v_is_zero, need_input_grads, g_s, g_v):
    """(sums, sums_backward) of the eager reference and of the fused kernels."""
    filt = edge_filter(d)[0][0]
    eager = (
        msg.message_sums(x, v, filt, u, edge_i, edge_j, v_is_zero, 7),
        msg.message_sums_backward(g_s, g_v, x, v, filt, u, edge_i, edge_j, v_is_zero, need_input_grads, 7),
    )
    fast = (
        fused.message_sums(x, v, filt, u, edge_i, edge_j, v_is_zero),
        fused.message_sums_backward(g_s, g_v, x, v, filt, u, edge_i, edge_j, v_is_zero, need_input_grads),
    )
    return eager, fast


def assert_close(a, b, rtol, atol=0.0):
    assert a.shape == b.shape and a.dtype == b.dtype
    if b.numel():
        assert (a - b).abs().max() <= rtol * b.abs().max() + atol, float((a - b).abs().max())


@needs_library
@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-13), (torch.float32, 1e-5)])
@pytest.mark.parametrize("v_is_zero", [False, True])
@pytest.mark.parametrize("need_input_grads", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n_edges", [0, 1, 300, 1000])  # tiles of 256 edges: none, part of one, several
def test_fused_equals_eager(dtype, rtol, v_is_zero, need_input_grads, threads, n_edges):
    msg, edge_filter, args = message_case(n_edges, dtype)
    if v_is_zero:
        args[1].zero_()
    g_s, g_v = torch.randn(N, F, dtype=dtype), torch.randn(N, 3, F, dtype=dtype)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)  # two threads: each sums into its own copy
    try:
        (sums, grads), (fast_sums, fast_grads) = both_paths(
            msg, edge_filter, *args, v_is_zero, need_input_grads, g_s, g_v
        )
    finally:
        torch.set_num_threads(previous)
    for a, b in zip(fast_sums, sums):
        assert_close(a, b, rtol)
    for a, b in zip(fast_grads, grads):
        if b is None:
            assert a is None or (v_is_zero and a.abs().max() == 0)  # g_v of a v that is zero
        else:
            assert_close(a, b, rtol, atol=1e-30)


@needs_library
@pytest.mark.parametrize("v_is_zero", [False, True])
def test_fused_backward_is_the_derivative_of_fused_forward(v_is_zero):
    """Central finite differences of the fused forward along random directions of x, v, d and u,
    against the fused backward (the filter gradient through EdgeFilter.backward to d)."""
    msg, edge_filter, (x, v, d, u, edge_i, edge_j) = message_case(300, torch.float64, seed=3)
    d = d.clamp(max=4.9)  # inside the cutoff, where fc is smooth
    v = v * (0 if v_is_zero else 1)
    g_s, g_v = torch.randn(N, F, dtype=torch.float64), torch.randn(N, 3, F, dtype=torch.float64)

    def loss(x, v, d, u):
        ds, dv = fused.message_sums(x, v, edge_filter(d)[0][0], u, edge_i, edge_j, v_is_zero)
        return float((ds * g_s).sum() + (dv * g_v).sum())

    filters, filter_ctx = edge_filter(d)
    g_x, g_v_in, projected, g_u = fused.message_sums_backward(
        g_s, g_v, x, v, filters[0], u, edge_i, edge_j, v_is_zero, True
    )
    g_d = edge_filter.backward(filter_ctx, projected)
    inputs, grads = [x, d, u], [g_x, g_d, g_u]
    if not v_is_zero:
        inputs, grads = inputs + [v], grads + [g_v_in]
    for k, (value, grad) in enumerate(zip(inputs, grads)):
        direction = torch.randn_like(value)
        h = 1e-6
        plus = [t + h * direction if n == k else t for n, t in enumerate(inputs)]
        minus = [t - h * direction if n == k else t for n, t in enumerate(inputs)]
        if not v_is_zero:
            fd = (loss(plus[0], plus[3], plus[1], plus[2]) - loss(minus[0], minus[3], minus[1], minus[2])) / (2 * h)
        else:
            fd = (loss(plus[0], v, plus[1], plus[2]) - loss(minus[0], v, minus[1], minus[2])) / (2 * h)
        predicted = float((grad * direction).sum())
        assert abs(fd - predicted) < 1e-7 * max(1.0, abs(predicted)), (k, fd, predicted)


@needs_library
@pytest.mark.parametrize("name", list(structures()))
def test_model_fused_equals_unfused_and_autograd(name, monkeypatch):
    """The whole model, float64: fused = the eager analytic path to 1e-12, = autograd to 1e-10."""
    model = make_model(n_features=32)
    g = graph_from_atoms([structures()[name]], model.elements, model.cutoff)
    args = (g.species, g.edge_i, g.edge_j, g.r_ij)
    e_fused, g_fused = model.energies_and_edge_gradients(*args)
    e_auto, g_auto = model.energies_and_edge_gradients(*args, method="autograd")
    monkeypatch.setattr(fused, "ENABLED", False)
    e_eager, g_eager = model.energies_and_edge_gradients(*args)
    assert (e_fused - e_eager).abs().max() < 1e-12 and (g_fused - g_eager).abs().max() < 1e-12
    assert (e_fused - e_auto).abs().max() < 1e-10 and (g_fused - g_auto).abs().max() < 1e-10
    assert g_auto.abs().max() > 1e-3


@needs_library
def test_model_fused_float32_within_1e5_of_eager(monkeypatch):
    model = make_model(n_features=64).float()
    g = graph_from_atoms([water_box()], model.elements, model.cutoff, torch.float32)
    args = (g.species, g.edge_i, g.edge_j, g.r_ij)
    e_fused, g_fused = model.energies_and_edge_gradients(*args)
    monkeypatch.setattr(fused, "ENABLED", False)
    e_eager, g_eager = model.energies_and_edge_gradients(*args)
    assert_close(g_fused, g_eager, 1e-5)
    assert_close(e_fused, e_eager, 1e-5)


@needs_library
def test_operators_pass_torch_opcheck():
    """Schemas, meta kernels (what torch.compile and torch.export see) and dispatch are consistent."""
    msg, edge_filter, (x, v, d, u, edge_i, edge_j) = message_case(300, torch.float64)
    filt = edge_filter(d)[0][0]
    g_s, g_v = torch.randn(N, F, dtype=torch.float64), torch.randn(N, 3, F, dtype=torch.float64)
    tests = ("test_schema", "test_faketensor", "test_aot_dispatch_dynamic")
    for v_is_zero in (False, True):
        torch.library.opcheck(
            torch.ops.mlff_fused.message_forward.default, (x, v, *filt, u, edge_i, edge_j, v_is_zero), test_utils=tests
        )
        for need in (False, True):
            torch.library.opcheck(
                torch.ops.mlff_fused.message_backward.default,
                (g_s, g_v, x, v, *filt, u, edge_i, edge_j, v_is_zero, need),
                test_utils=tests,
            )


def test_training_keeps_the_differentiable_eager_path():
    """A tensor that needs a gradient (training on forces) never goes to the fused kernels."""
    x = torch.randn(4, 3)
    assert not fused.applies(x.requires_grad_(True))
    assert fused.applies(torch.randn(4, 3)) == (fused.UNAVAILABLE is None and fused.ENABLED)
    model = make_model(n_features=16).requires_grad_(True)  # training: the weights need gradients
    g = graph_from_atoms([structures()["ethanol"]], model.elements, model.cutoff)
    with torch.enable_grad():
        energies, grad = model.energies_and_edge_gradients(g.species, g.edge_i, g.edge_j, g.r_ij)
        (grad.square().sum() + energies.sum()).backward()  # a force loss reaches the weights
    assert model.messages[0].phi.inner.weight.grad.abs().max() > 0
