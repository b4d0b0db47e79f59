"""The fused message kernels (model/fused) against the eager reference, autograd and finite
differences; the decision of when they run.

The CPU library's kernels run wherever `make setup` built them. The Triton kernels run on a GPU,
or on the CPU in Triton's interpreter (TRITON_INTERPRET=1 with triton importable, slow); else
they are skipped."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

from mlff_distiller.model import fused
from mlff_distiller.model.blocks import EdgeFilter, Message
from mlff_distiller.model.graph import graph_from_atoms

from model_cases import make_model, structures, water_box

N, F, K, CUTOFF = 11, 8, 6, 5.0
TRITON_INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1" and importlib.util.find_spec("triton") is not None


def kernels(name: str):
    """(forward, backward, device) of one implementation of the fused operators, or a skip."""
    if name == "cpu":
        if fused.UNAVAILABLE["cpu"]:
            pytest.skip(fused.UNAVAILABLE["cpu"])
        ops, device = torch.ops.mlff_fused, "cpu"
    elif fused.UNAVAILABLE["cuda"] is None:
        ops, device = torch.ops.mlff_triton, "cuda"
    elif TRITON_INTERPRETED:
        from mlff_distiller.model.fused import message_triton  # noqa: F401 (registers the operators)

        ops, device = torch.ops.mlff_triton, "cpu"
    else:
        pytest.skip(f"Triton kernels: {fused.UNAVAILABLE['cuda']}, and TRITON_INTERPRET=1 is not set")
    return ops.message_forward, ops.message_backward, device


def test_setup_built_the_library():
    """An environment made by scripts/setup.sh has the kernels: CI cannot skip them unnoticed."""
    if not (Path(sys.prefix) / ".setup-complete").exists():
        pytest.skip("not the environment of scripts/setup.sh")
    assert fused.UNAVAILABLE["cpu"] is None


def message_case(n_edges: int, dtype, seed: int = 0, by_receiver: bool = False):
    """A message block and random inputs: repeated and one-way edges, atoms without edges; the
    edges in random order or, as neighbour lists give them, sorted by receiver."""
    torch.manual_seed(seed)
    msg, edge_filter = Message(F).to(dtype), EdgeFilter(K, CUTOFF, 1, 3 * F).to(dtype)
    msg.requires_grad_(False), edge_filter.requires_grad_(False)
    edge_i, edge_j = torch.randint(0, N - 2, (n_edges,)), torch.randint(0, N, (n_edges,))
    if by_receiver:
        edge_i = edge_i.sort().values
    d = torch.rand(n_edges, dtype=dtype) * 5.5 + 0.3  # some beyond the cutoff
    u = torch.nn.functional.normalize(torch.randn(n_edges, 3, dtype=dtype), dim=1)
    x, v = torch.randn(N, 3 * F, dtype=dtype), torch.randn(N, 3, F, dtype=dtype)
    return msg, edge_filter, (x, v, d, u, edge_i, edge_j)


def assert_close(a, b, rtol, atol=0.0):
    assert a.shape == b.shape and a.dtype == b.dtype
    if b.numel():
        assert (a - b).abs().max() <= rtol * b.abs().max() + atol, float((a - b).abs().max())


# two CPU threads: each sums into its own copy
@pytest.mark.parametrize("implementation, threads", [("cpu", 1), ("cpu", 2), ("triton", 1)])
@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-13), (torch.float32, 1e-5)])
@pytest.mark.parametrize("v_is_zero", [False, True])
@pytest.mark.parametrize("need_input_grads", [True, False])
@pytest.mark.parametrize("n_edges", [0, 1, 300, 1000])  # CPU tiles of 256 edges: none, part of one, several
@pytest.mark.parametrize("by_receiver", [False, True])  # neighbour lists come sorted by receiver
def test_fused_equals_eager(implementation, threads, dtype, rtol, v_is_zero, need_input_grads, n_edges, by_receiver):
    forward, backward, device = kernels(implementation)
    msg, edge_filter, args = message_case(n_edges, dtype, by_receiver=by_receiver)
    if v_is_zero:
        args[1].zero_()
    g_s, g_v = torch.randn(N, F, dtype=dtype), torch.randn(N, 3, F, dtype=dtype)
    x, v, d, u, edge_i, edge_j = args
    filt = edge_filter(d)[0][0]
    sums = msg.message_sums(x, v, filt, u, edge_i, edge_j, v_is_zero, 7)
    grads = msg.message_sums_backward(g_s, g_v, x, v, filt, u, edge_i, edge_j, v_is_zero, need_input_grads, 7)
    on = [t.to(device) for t in (g_s, g_v, x, v, *filt, u, edge_i, edge_j)]
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        fast_sums = forward(*on[2:], v_is_zero)
        fast_grads = backward(*on, v_is_zero, need_input_grads)
    finally:
        torch.set_num_threads(previous)
    for a, b in zip(fast_sums, sums):
        assert_close(a.cpu(), b, rtol)
    for a, b in zip(fast_grads, grads):
        if b is None:  # not asked for (0 rows), or g_v of a v that is zero
            assert a.shape[0] == 0 or (v_is_zero and a.abs().max() == 0)
        else:
            assert_close(a.cpu(), b, rtol, atol=1e-30)


@pytest.mark.parametrize("block_edges, num_warps", [(16, 1), (64, 8), (128, 2)])
def test_triton_kernels_agree_at_every_launch_setting_tuned(monkeypatch, block_edges, num_warps):
    """The launch settings `gpu_model.py --tune` times give the eager block's sums and gradients."""
    forward, backward, device = kernels("triton")
    from mlff_distiller.model.fused import message_triton

    monkeypatch.setattr(message_triton, "BLOCK_EDGES", block_edges)
    monkeypatch.setattr(message_triton, "NUM_WARPS", num_warps)
    msg, edge_filter, args = message_case(300, torch.float64, seed=5)
    x, v, d, u, edge_i, edge_j = args
    g_s, g_v = torch.randn(N, F, dtype=torch.float64), torch.randn(N, 3, F, dtype=torch.float64)
    filt = edge_filter(d)[0][0]
    sums = msg.message_sums(x, v, filt, u, edge_i, edge_j, False, 7)
    grads = msg.message_sums_backward(g_s, g_v, x, v, filt, u, edge_i, edge_j, False, True, 7)
    on = [t.to(device) for t in (g_s, g_v, x, v, *filt, u, edge_i, edge_j)]
    for a, b in zip((*forward(*on[2:], False), *backward(*on, False, True)), (*sums, *grads)):
        assert_close(a.cpu(), b, 1e-13, atol=1e-30)


@pytest.mark.parametrize("implementation", ["cpu", "triton"])
@pytest.mark.parametrize("v_is_zero", [False, True])
def test_fused_backward_is_the_derivative_of_fused_forward(implementation, v_is_zero):
    """Central finite differences of the fused forward along random directions of x, v, d and u,
    against the fused backward (the filter gradient through EdgeFilter.backward to d)."""
    forward, backward, device = kernels(implementation)
    msg, edge_filter, (x, v, d, u, edge_i, edge_j) = message_case(300, torch.float64, seed=3)
    edge_filter.to(device)
    d = d.clamp(max=4.9)  # inside the cutoff, where fc is smooth
    v = v * (0 if v_is_zero else 1)
    g_s, g_v = torch.randn(N, F, dtype=torch.float64), torch.randn(N, 3, F, dtype=torch.float64)
    x, v, d, u, edge_i, edge_j, g_s, g_v = (t.to(device) for t in (x, v, d, u, edge_i, edge_j, g_s, g_v))

    def loss(x, v, d, u):
        ds, dv = forward(x, v, *edge_filter(d)[0][0], u, edge_i, edge_j, v_is_zero)
        return float((ds * g_s).sum() + (dv * g_v).sum())

    filters, filter_ctx = edge_filter(d)
    g_x, g_v_in, projected, g_u = backward(g_s, g_v, x, v, *filters[0], u, edge_i, edge_j, v_is_zero, True)
    g_d = edge_filter.backward(filter_ctx, projected)
    inputs, grads = {"x": x, "v": v, "d": d, "u": u}, {"x": g_x, "v": g_v_in, "d": g_d, "u": g_u}
    for name in ["x", "d", "u"] + ([] if v_is_zero else ["v"]):
        direction = torch.randn_like(inputs[name])
        h = 1e-6
        plus = loss(**{**inputs, name: inputs[name] + h * direction})
        minus = loss(**{**inputs, name: inputs[name] - h * direction})
        fd, predicted = (plus - minus) / (2 * h), float((grads[name] * direction).sum())
        assert abs(fd - predicted) < 1e-7 * max(1.0, abs(predicted)), (name, fd, predicted)


def model_device(device: str) -> str:
    if not fused.serves(device):
        pytest.skip(f"fused kernels on {device}: {fused.UNAVAILABLE.get(device)}")
    return device


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("name", list(structures()))
def test_model_fused_equals_unfused_and_autograd(device, name, monkeypatch):
    """The whole model, float64: fused = the eager analytic path to 1e-12, = autograd to 1e-10."""
    model = make_model(n_features=32).to(model_device(device))
    g = graph_from_atoms([structures()[name]], model.elements, model.cutoff)
    args = tuple(t.to(device) for t in (g.species, g.edge_i, g.edge_j, g.r_ij))
    e_fused, g_fused = model.energies_and_edge_gradients(*args)
    e_auto, g_auto = model.energies_and_edge_gradients(*args, method="autograd")
    monkeypatch.setattr(fused, "ENABLED", False)
    e_eager, g_eager = model.energies_and_edge_gradients(*args)
    assert (e_fused - e_eager).abs().max() < 1e-12 and (g_fused - g_eager).abs().max() < 1e-12
    assert (e_fused - e_auto).abs().max() < 1e-10 and (g_fused - g_auto).abs().max() < 1e-10
    assert g_auto.abs().max() > 1e-3


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_model_fused_float32_within_1e5_of_eager(device, monkeypatch):
    model = make_model(n_features=64).float().to(model_device(device))
    g = graph_from_atoms([water_box()], model.elements, model.cutoff, torch.float32)
    args = tuple(t.to(device) for t in (g.species, g.edge_i, g.edge_j, g.r_ij))
    e_fused, g_fused = model.energies_and_edge_gradients(*args)
    monkeypatch.setattr(fused, "ENABLED", False)
    e_eager, g_eager = model.energies_and_edge_gradients(*args)
    assert_close(g_fused, g_eager, 1e-5)
    assert_close(e_fused, e_eager, 1e-5)


@pytest.mark.parametrize("implementation", ["cpu", "triton"])
def test_operators_pass_torch_opcheck(implementation):
    """Schemas, fake kernels (what torch.compile and torch.export see) and dispatch are consistent."""
    forward, backward, device = kernels(implementation)
    if implementation == "triton" and device == "cpu":
        pytest.skip("Triton's interpreter runs kernels on the fake tensors themselves: opcheck needs a GPU")
    msg, edge_filter, (x, v, d, u, edge_i, edge_j) = message_case(300, torch.float64)
    g_s, g_v = torch.randn(N, F, dtype=torch.float64), torch.randn(N, 3, F, dtype=torch.float64)
    filt = edge_filter(d)[0][0]
    x, v, u, edge_i, edge_j, g_s, g_v = (t.to(device) for t in (x, v, u, edge_i, edge_j, g_s, g_v))
    filt = [t.to(device) for t in filt]
    tests = ("test_schema", "test_faketensor", "test_aot_dispatch_dynamic")
    for v_is_zero in (False, True):
        torch.library.opcheck(forward.default, (x, v, *filt, u, edge_i, edge_j, v_is_zero), test_utils=tests)
        for need in (False, True):
            args = (g_s, g_v, x, v, *filt, u, edge_i, edge_j, v_is_zero, need)
            torch.library.opcheck(backward.default, args, test_utils=tests)


def test_training_keeps_the_differentiable_eager_path():
    """A tensor that needs a gradient (training on forces) never goes to the fused kernels."""
    x = torch.randn(4, 3)
    assert not fused.applies(x.requires_grad_(True))
    model = make_model(n_features=16).requires_grad_(True)  # training: the weights need gradients
    g = graph_from_atoms([structures()["ethanol"]], model.elements, model.cutoff)
    with torch.enable_grad():
        energies, grad = model.energies_and_edge_gradients(g.species, g.edge_i, g.edge_j, g.r_ij)
        (grad.square().sum() + energies.sum()).backward()  # a force loss reaches the weights
    assert model.messages[0].phi.inner.weight.grad.abs().max() > 0
