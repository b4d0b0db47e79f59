"""Padded shape buckets and CUDA-graph replay (replay.py): padding adds exactly nothing, buckets
grow and shrink with the system, and on a GPU a replayed graph equals the eager call."""

import pytest
import torch

from mlff_distiller.model.graph import graph_from_atoms
from mlff_distiller.model.halo import GatherHalo, Halo
from mlff_distiller.model.replay import SMALLEST_EDGES, GraphReplay, bucket_size, next_size, step_runner

from model_cases import ghost_graph, make_model, structures, water_box

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def inputs(model, atoms, device="cpu"):
    g = graph_from_atoms([atoms], model.elements, model.cutoff, model.dtype)
    return [t.to(device) for t in (g.species, g.edge_i, g.edge_j, g.r_ij)]


def random_graph(seed, n=15, e=90, dtype=torch.float64, device="cpu"):
    """Repeated and one-way edges, some of them longer than the cutoff."""
    gen = torch.Generator().manual_seed(seed)
    species = torch.randint(0, 4, (n,), generator=gen)
    edge_i, edge_j = torch.randint(0, n, (e,), generator=gen), torch.randint(0, n, (e,), generator=gen)
    r_ij = torch.randn(e, 3, generator=gen, dtype=dtype) * 2.5
    return [t.to(device) for t in (species, edge_i, edge_j, r_ij)]


def test_bucket_sizes_grow_geometrically():
    sizes = sorted({bucket_size(n, 32) for n in range(1, 20000)})
    assert sizes[0] == 32 and all(s % 16 == 0 for s in sizes)  # Triton's divisibility stays the same
    assert all(1.05 < b / a <= 1.125 + 16 / a for a, b in zip(sizes, sizes[1:]))
    assert all(bucket_size(n, 32) >= n for n in (1, 33, 999, 19999))


@pytest.mark.parametrize("method", ["analytic", "autograd"])
@pytest.mark.parametrize("name", ["ethanol", "water_triclinic"])
def test_padded_equals_unpadded(name, method):
    """float64: the padded call gives the unpadded numbers to 1e-12, counted atoms or not."""
    model = make_model(n_features=32)
    runner = GraphReplay(model, method)
    args = inputs(model, structures()[name])
    for n_counted in (None, 5):
        e_ref, g_ref = model.energies_and_edge_gradients(*args, n_counted, method)
        energies, grad = runner(*args, n_counted)
        assert energies.shape == e_ref.shape and grad.shape == g_ref.shape
        assert (energies - e_ref).abs().max() < 1e-12
        assert (grad - g_ref).abs().max() < 1e-12
        assert g_ref.abs().max() > 1e-3  # not a comparison between zeros
    (bucket,) = runner.buckets.values()
    assert bucket.shape[0] > args[0].shape[0] and bucket.shape[1] > args[1].shape[0]  # it did pad


def test_padding_edges_add_exactly_nothing():
    """In the padded buffers, padding edges get exactly zero gradient and padding atoms exactly
    zero weight, whatever the chunking."""
    model = make_model(n_features=16)
    model.chunk_bytes = 1  # many chunks, padding in several of them
    runner = GraphReplay(model)
    species, edge_i, edge_j, r_ij = inputs(model, structures()["acetamide"])
    runner(species, edge_i, edge_j, r_ij)
    (bucket,) = runner.buckets.values()
    n, e = species.shape[0], edge_i.shape[0]
    n_pad, e_pad = bucket.shape[0] - n, bucket.shape[1] - e
    assert n_pad > 1 and e_pad > 1
    assert (bucket.edge_i[e:] >= n).all() and torch.equal(bucket.edge_i[e:], bucket.edge_j[e:])
    padding_atoms = set(bucket.edge_i[e:].tolist())  # spread over the padding atoms: none gets them all
    assert padding_atoms <= set(range(n, bucket.shape[0])) and len(padding_atoms) == min(e_pad, n_pad)
    assert (bucket.r_ij[e:].norm(dim=1) > model.cutoff).all()
    _, grad = bucket.compute()
    assert torch.equal(grad[e:], torch.zeros_like(grad[e:]))


@pytest.mark.parametrize("seed", range(3))
def test_random_graphs_through_one_bucket(seed):
    """Sizes that change inside one bucket (more atoms, fewer edges, other counted atoms): the
    padding is rewritten and stale rows of the previous call never leak in."""
    model = make_model(n_features=24, seed=seed)
    runner = GraphReplay(model)
    for step, (n, e, n_counted) in enumerate([(25, 110, 25), (30, 100, 9), (22, 112, 22), (30, 100, 9)]):
        args = random_graph(seed * 10 + step, n, e)
        energies, grad = runner(*args, n_counted)
        e_ref, g_ref = model.energies_and_edge_gradients(*args, n_counted)
        assert (energies - e_ref).abs().max() < 1e-12 and (grad - g_ref).abs().max() < 1e-12
    assert len(runner.buckets) == 1


def test_a_growing_system_moves_up_the_buckets_and_memory_stays_bounded():
    model = make_model(n_features=16)
    runner = GraphReplay(model, max_buckets=2)
    shapes = []
    for n_side in (1, 2, 3):
        args = inputs(model, water_box(n_side))
        energies, grad = runner(*args)
        e_ref, g_ref = model.energies_and_edge_gradients(*args)
        assert (energies - e_ref).abs().max() < 1e-12 and (grad - g_ref).abs().max() < 1e-12
        shapes.append(next(reversed(runner.buckets)))
        assert len(runner.buckets) <= 2
    assert shapes[0] < shapes[1] < shapes[2]
    assert list(runner.buckets) == shapes[1:]  # the least recently used went first


def test_sizes_hovering_around_bucket_boundaries_make_no_new_buckets():
    """Atoms and pairs that go up and down across a boundary (as at every neighbour-list build in
    MD) settle in kept buckets after the first round: no bucket is made (on a GPU: captured) again."""
    model = make_model(n_features=16)
    runner = GraphReplay(model, max_buckets=3)
    pairs = bucket_size(500, SMALLEST_EDGES)  # a boundary of the series of pair buckets
    sizes = [
        (31, pairs),
        (32, pairs),
        (31, pairs + 1),
        (32, pairs + 1),
        (31, pairs),
        (32, pairs - 1),
    ]  # around 32 atoms

    def one_round(seed):
        for k, (n, e) in enumerate(sizes):
            args = random_graph(seed + k, n, e)
            energies, grad = runner(*args)
            e_ref, g_ref = model.energies_and_edge_gradients(*args)
            assert (energies - e_ref).abs().max() < 1e-12 and (grad - g_ref).abs().max() < 1e-12
        return {key: id(bucket) for key, bucket in runner.buckets.items()}

    first = one_round(0)
    assert one_round(100) == first and len(first) <= 3
    assert max(first)[:2] == (48, next_size(pairs))  # the next size in each dimension, reached together


def test_step_runner_is_the_one_device_decision(monkeypatch):
    model = make_model(n_features=8)
    monkeypatch.setenv("MLFF_COMPILE", "0")
    assert not isinstance(step_runner(model, "analytic"), GraphReplay)  # the eager model itself
    monkeypatch.setenv("MLFF_COMPILE", "1")
    runner = step_runner(model, "autograd")
    assert isinstance(runner, GraphReplay) and runner.fuse and not runner.graphs and runner.method == "autograd"


@pytest.mark.slow
def test_compiled_buckets_on_the_cpu_equal_eager():
    """The CPU's compiled path (inductor's C++ code over padded buckets) against the eager model,
    float64: two bucket sizes and a halo, without recompiling for the second size."""
    model = make_model(n_features=32)
    runner = GraphReplay(model, "analytic", graphs=False, fuse=True)
    for n_side in (1, 2):
        args = inputs(model, water_box(n_side))
        n_counted = args[0].shape[0] - 1
        with torch._dynamo.config.patch(error_on_recompile=n_side == 2):  # a new bucket, the same compiled code
            energies, grad = runner(*args, n_counted)
        e_ref, g_ref = model.energies_and_edge_gradients(*args, n_counted)
        assert (energies - e_ref).abs().max() < 1e-10 * e_ref.abs().max()
        assert (grad - g_ref).abs().max() < 1e-10 * g_ref.abs().max()
    assert len(runner.buckets) == 2
    args, n, halo = halo_case(model, water_box(2))
    energies, grad = runner(*args, n, halo)
    e_ref, g_ref = model.energies_and_edge_gradients(*args, n, "analytic", halo)
    assert (grad - g_ref).abs().max() < 1e-10 * g_ref.abs().max()


def halo_case(model, atoms, device="cpu"):
    """Local atoms, ghost images and the GatherHalo between them (one process, periodic box)."""
    species, edge_i, edge_j, r_ij, owner = ghost_graph(atoms, model.cutoff)
    n = len(atoms)
    halo = GatherHalo(torch.arange(n, len(owner), device=device), owner[n:].to(device))
    args = [t.to(device) for t in (species, edge_i, edge_j, r_ij.to(model.dtype))]
    return args, n, halo


@pytest.mark.parametrize("method", ["analytic", "autograd"])
def test_padded_halo_equals_unpadded_halo(method):
    """A GatherHalo is padded with the rest (padding ghosts: padding atoms onto themselves)."""
    model = make_model(n_features=16)
    runner = GraphReplay(model, method)
    atoms = water_box(2)
    for case in (atoms, atoms[:-1]):  # one bucket, fewer atoms, edges and ghosts the second time
        args, n, halo = halo_case(model, case)
        energies, grad = runner(*args, n, halo)
        e_ref, g_ref = model.energies_and_edge_gradients(*args, n, method, halo)
        assert (energies - e_ref).abs().max() < 1e-12 and (grad - g_ref).abs().max() < 1e-12
    ((key, bucket),) = runner.buckets.items()
    assert key[3] == "gather" and bucket.halo.ghosts.shape[0] > halo.ghosts.shape[0]


def callback_halo(gather: GatherHalo, calls: list) -> Halo:
    """The exchange of ``gather`` through host callbacks (as MPI ranks exchange), counted."""

    def counted(exchange):
        return lambda rows: calls.append(rows.shape[0]) or exchange(rows)

    return Halo(counted(gather.copy_to_ghosts), counted(gather.sum_into_owners))


def test_a_callback_halo_runs_eagerly_uncompiled():
    """Exchanges through host callbacks cannot be captured: uncompiled, that call runs as is."""
    model = make_model(n_features=16)
    args, n, gather = halo_case(model, water_box())
    calls = []
    runner = GraphReplay(model)
    energies, grad = runner(*args, n, callback_halo(gather, calls))
    e_ref, g_ref = model.energies_and_edge_gradients(*args, n, "analytic", gather)
    assert torch.equal(energies, e_ref) and torch.equal(grad, g_ref)
    assert len(calls) == 2 * (model.config.n_layers - 1) and not runner.buckets


@pytest.mark.slow
@pytest.mark.parametrize("method", ["analytic", "autograd"])
def test_compiled_callback_halo_equals_eager(method):
    """The compiled model calls host exchanges through the opaque operator (the CPU's and the
    GPUs' path on several MPI ranks): padded buckets, the callbacks see only the real rows, the
    numbers are the eager ones, and a smaller system in the same bucket does not recompile."""
    model = make_model(n_features=16)
    runner = GraphReplay(model, method, graphs=False, fuse=True)
    atoms = water_box(2)
    for case in (atoms, atoms[:-1]):
        args, n, gather = halo_case(model, case)
        calls = []
        with torch._dynamo.config.patch(error_on_recompile=case is not atoms):
            energies, grad = runner(*args, n, callback_halo(gather, calls))
        e_ref, g_ref = model.energies_and_edge_gradients(*args, n, method, gather)
        assert (energies - e_ref).abs().max() < 1e-12 and (grad - g_ref).abs().max() < 1e-12
        assert g_ref.abs().max() > 1e-3
        assert calls == [args[0].shape[0]] * (2 * (model.config.n_layers - 1))
    ((key, bucket),) = runner.buckets.items()
    assert key[3] == "host" and bucket.shape[0] > args[0].shape[0] and not bucket.replayable


def test_layout_errors_are_still_caught():
    model = make_model(n_features=8)
    species, edge_i, edge_j, r_ij = random_graph(0)
    with pytest.raises(ValueError, match="n_counted=16 must lie in 0..15"):
        GraphReplay(model)(species, edge_i, edge_j, r_ij, 16)
    with pytest.raises(ValueError, match="r_ij is torch.float32"):
        GraphReplay(model)(species, edge_i, edge_j, r_ij.float())
    with pytest.raises(ValueError, match="CUDA graphs need a model on a CUDA device"):
        GraphReplay(model, graphs=True)
    with pytest.raises(ValueError, match="unknown method"):
        GraphReplay(model, "magic")


# ---------------------------------------------------------------------------------------------
# On a GPU
# ---------------------------------------------------------------------------------------------
@cuda
def test_one_edge_chunk_on_the_gpu():
    model = make_model(n_features=128, dtype=torch.float32)
    assert model.edge_chunk(torch.device("cpu")) < 1000
    assert model.edge_chunk(torch.device("cuda")) > 100_000  # a 2,000-atom liquid in one chunk


@cuda
@pytest.mark.parametrize("method", ["analytic", "autograd"])
@pytest.mark.parametrize(
    "dtype, tolerance, fuse", [(torch.float64, 1e-10, False), (torch.float32, 2e-4, False), (torch.float32, 2e-4, True)]
)
def test_graph_replay_equals_eager_on_the_gpu(method, dtype, tolerance, fuse):
    """A captured graph reads its buffers afresh on every replay: new positions, new counted
    atoms and new sizes all give the eager numbers, with and without torch.compile (atomic adds
    and fused kernels change the order of sums: tolerances relative to the largest value)."""
    model = make_model(n_features=64, dtype=dtype).cuda()
    runner = GraphReplay(model, method, fuse=fuse)
    assert runner.graphs
    atoms = water_box(2)
    for step in range(4):
        atoms.rattle(0.05, seed=step)
        args = inputs(model, atoms, "cuda")
        n_counted = len(atoms) - 3 * (step % 2)
        energies, grad = runner(*args, n_counted)
        e_ref, g_ref = model.energies_and_edge_gradients(*args, n_counted, method)
        scale = g_ref.abs().max()
        assert (energies - e_ref).abs().max() < tolerance * e_ref.abs().max()
        assert (grad - g_ref).abs().max() < tolerance * scale and scale > 1e-3
    assert all(bucket.graph is not None for bucket in runner.buckets.values())
    args = inputs(model, water_box(3), "cuda")  # outgrows its bucket
    energies, grad = runner(*args)
    e_ref, g_ref = model.energies_and_edge_gradients(*args, None, method)
    assert (grad - g_ref).abs().max() < tolerance * g_ref.abs().max()
    assert len(runner.buckets) == 2


@cuda
def test_replay_outputs_are_not_overwritten_by_the_next_replay():
    model = make_model(n_features=16).cuda()
    runner = GraphReplay(model, fuse=False)
    first = runner(*random_graph(0, device="cuda"))
    kept = [t.clone() for t in first]
    runner(*random_graph(1, device="cuda"))
    assert all(torch.equal(a, b) for a, b in zip(first, kept))


@cuda
@pytest.mark.parametrize("method, fuse", [("analytic", True), ("autograd", False)])
def test_graph_replay_with_a_gather_halo_on_the_gpu(method, fuse):
    """One rank of a periodic box: the halo exchange is captured (and compiled) with the rest."""
    model = make_model(n_features=32).cuda()
    runner = GraphReplay(model, method, fuse=fuse)
    atoms = water_box(2)
    for step in range(3):
        atoms.rattle(0.05, seed=step)
        args, n, halo = halo_case(model, atoms, "cuda")
        energies, grad = runner(*args, n, halo)
        e_ref, g_ref = model.energies_and_edge_gradients(*args, n, method, halo)
        assert (energies - e_ref).abs().max() < 1e-10 * e_ref.abs().max()
        assert (grad - g_ref).abs().max() < 1e-10 * g_ref.abs().max()
    ((_, bucket),) = runner.buckets.items()
    assert bucket.graph is not None
