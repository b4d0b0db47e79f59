"""The force step behind `pair_style mliap/aoti` (lammps/aoti.py) without LAMMPS: pairs it must
drop (beyond the cutoff, a NULL-type end, the padding atom's) add exactly nothing (the sums over
atoms: to round-off); both compiled
models of a package (one rank, several ranks through the exchange operator, whose Python
implementation is the one-rank gather) equal the eager step at every size, the smallest (no real
ghost, one real pair) included."""

import pytest
import torch

from torch._inductor.package import load_package

from mlff_distiller.lammps.aoti import PACKAGE_MODELS, ForceStep, compile_package, example_inputs
from mlff_distiller.model.io import save_model
from mlff_distiller.model.painn import PaiNN, PaiNNConfig


def small_model() -> PaiNN:
    torch.manual_seed(0)
    model = PaiNN(PaiNNConfig(elements=["H", "O"], n_features=16, n_layers=3, cutoff=4.0, repulsion=True))
    with torch.no_grad():
        model.readout.shift.uniform_(-1, 1)
    return model.double().eval().requires_grad_(False)


def assert_sums_equal(a: torch.Tensor, b: torch.Tensor):
    """The sums over atoms (energy, virial) equal to round-off: more rows, even of zeros, may
    group a sum's additions differently (the per-atom outputs are compared exactly)."""
    torch.testing.assert_close(b, a, rtol=1e-14, atol=0.0)


def test_dropped_pairs_add_exactly_nothing():
    step = ForceStep(small_model())
    x_local, x_ghost, species, pair_i, pair_j, ghosts, owners = example_inputs(step.model, "cpu")
    base = step(x_local, x_ghost, species, pair_i, pair_j, ghosts, owners)
    # a far ghost row (beyond the cutoff of every atom) before the padding atom, joined to every
    # local atom both ways
    pad = x_local.shape[0] + x_ghost.shape[0]  # the padding atom's new index
    x_ghost2 = torch.cat((x_ghost[:-1], torch.tensor([[40.0, 0.0, 0.0]], dtype=x_ghost.dtype), x_ghost[-1:]))
    species2 = torch.cat((species[:-1], torch.tensor([1, 0])))
    local = torch.arange(x_local.shape[0])
    far = torch.full_like(local, pad - 1)
    remap = lambda index: torch.where(index == pad - 1, pad, index)  # noqa: E731 (the padding atom moved)
    pair_i2 = torch.cat((remap(pair_i), local, far))
    pair_j2 = torch.cat((remap(pair_j), far, local))
    extended = step(x_local, x_ghost2, species2, pair_i2, pair_j2, remap(ghosts), remap(owners))
    keep = torch.cat((torch.arange(pad - 1), torch.tensor([pad])))
    for a, b in zip(base, extended):
        if b.dim() and b.shape[0] == pad + 1:
            assert torch.equal(a, b[keep])
        else:
            assert_sums_equal(a, b)


def test_inputs_padded_as_for_a_cuda_graph_add_exactly_nothing():
    """The padding of pair_mliap_aoti.cpp's graph replays: more ghost rows at the origin, of element
    0, joined to nothing; the pair and ghost lists lengthened with the last of them joined to itself.
    The real rows' outputs stay exactly as they were."""
    step = ForceStep(small_model())
    x_local, x_ghost, species, pair_i, pair_j, ghosts, owners = example_inputs(step.model, "cpu")
    base = step(x_local, x_ghost, species, pair_i, pair_j, ghosts, owners)
    rows, extra = x_local.shape[0] + x_ghost.shape[0], 5
    last = torch.tensor([rows + extra - 1])

    def padded(index, more):
        return torch.cat((index, last.repeat(more)))

    padded_call = step(
        x_local,
        torch.cat((x_ghost, x_ghost.new_zeros(extra, 3))),
        torch.cat((species, species.new_zeros(extra))),
        padded(pair_i, 7),
        padded(pair_j, 7),
        padded(ghosts, 3),
        padded(owners, 3),
    )
    for a, b in zip(base, padded_call):
        if b.dim() and b.shape[0] == rows + extra:
            assert torch.equal(a, b[:rows])
        else:
            assert_sums_equal(a, b)


@pytest.mark.slow
def test_compiled_package_equals_the_eager_step(tmp_path, exchange_operator_calls):
    """Both models of a CPU package equal the eager step at every size; only the several-ranks
    model calls the exchange operator (the one-rank model gathers inside the compiled code)."""
    model = small_model()
    save_model(model, tmp_path / "m.pt")
    package = compile_package((tmp_path / "m.pt").read_bytes(), tmp_path / "m.pt2", "analytic", "float64", "cpu")
    step = ForceStep(model)
    traced = example_inputs(model, "cpu")
    x_local, x_ghost, species = traced[:3]
    one = torch.tensor([2])  # the padding atom of the two-atom call
    calls = {
        "traced sizes": traced,
        "two atoms, no ghost, one pair": (
            x_local[:2],
            x_ghost[-1:],
            torch.cat((species[:2], species[-1:])),
            torch.tensor([0, 2]),
            torch.tensor([1, 2]),
            one,
            one,
        ),
        "a rank without atoms": (x_local[:0], x_ghost[-1:], species[-1:], *[torch.tensor([0])] * 4),
    }
    for exchange, model_name in PACKAGE_MODELS.items():
        compiled = load_package(str(package), model_name)
        for name, args in calls.items():
            expected = step(*args)
            exchange_operator_calls.clear()
            for a, b in zip(expected, compiled(*args)):
                assert torch.allclose(a, b, rtol=0, atol=1e-12 * max(1.0, float(a.abs().max()))), (model_name, name)
            assert bool(exchange_operator_calls) == (exchange == "operator"), (model_name, name)
