"""The whole model: analytic dE/dr_ij against autograd, invariances, Hessian symmetry, edge cases."""

import numpy as np
import pytest
import torch
from ase import Atoms

from mlff_distiller.model.graph import forces_from_edge_gradients, graph_from_atoms

from model_cases import make_model, structures, water_box


def run(model, graph, method, n_counted=None):
    return model.energies_and_edge_gradients(graph.species, graph.edge_i, graph.edge_j, graph.r_ij, n_counted, method)


def forces(model, atoms, method="analytic"):
    g = graph_from_atoms([atoms], model.elements, model.cutoff)
    energies, grad = run(model, g, method)
    return float(energies.sum()), forces_from_edge_gradients(g.edge_i, g.edge_j, grad, len(atoms)).numpy()


@pytest.mark.parametrize("name", list(structures()))
def test_analytic_equals_autograd_float64(name):
    model = make_model(n_features=32)
    atoms = structures()[name]
    g = graph_from_atoms([atoms], model.elements, model.cutoff)
    e_a, g_a = run(model, g, "analytic")
    e_r, g_r = run(model, g, "autograd")
    assert (e_a - e_r).abs().max() < 1e-12  # one forward, but the analytic one may run fused
    assert (g_a - g_r).abs().max() < 1e-10
    assert g_r.abs().max() > 1e-3  # the comparison is not between zeros


@pytest.mark.parametrize("seed", range(3))
def test_analytic_equals_autograd_on_random_graphs(seed):
    """Arbitrary directed graphs: repeated edges, one-way edges, ghost-like atoms not counted."""
    torch.manual_seed(seed)
    model = make_model(n_features=24, seed=seed)
    n, e = 15, 90
    species = torch.randint(0, 4, (n,))
    edge_i, edge_j = torch.randint(0, n, (e,)), torch.randint(0, n, (e,))
    r_ij = torch.randn(e, 3) * 2
    for n_counted in (n, 9):
        e_a, g_a = model.energies_and_edge_gradients(species, edge_i, edge_j, r_ij, n_counted, "analytic")
        e_r, g_r = model.energies_and_edge_gradients(species, edge_i, edge_j, r_ij, n_counted, "autograd")
        assert e_a.shape == (n_counted,)
        assert (g_a - g_r).abs().max() < 1e-10


def test_default_size_model_and_chunking():
    """Full-size hyper-parameters; tiny chunks give the same numbers as one chunk."""
    model = make_model(n_features=128)
    g = graph_from_atoms([water_box()], model.elements, model.cutoff)
    e_r, g_r = run(model, g, "autograd")
    for chunk_bytes in (1, 1 << 20):
        model.chunk_bytes = chunk_bytes
        e_a, g_a = run(model, g, "analytic")
        assert (g_a - g_r).abs().max() < 1e-10
        assert (e_a - e_r).abs().max() < 1e-12


def test_float32_close_to_float64():
    """float32 analytic forces agree with float64 to 1e-4 of the largest force."""
    model64 = make_model(n_features=32)
    model32 = make_model(n_features=32, dtype=torch.float32)
    atoms = water_box()
    g64 = graph_from_atoms([atoms], model64.elements, model64.cutoff)
    g32 = g64.to(dtype=torch.float32)
    _, grad64 = run(model64, g64, "analytic")
    _, grad32 = run(model32, g32, "analytic")
    _, grad32_auto = run(model32, g32, "autograd")
    scale = grad64.abs().max()
    assert (grad32.double() - grad64).abs().max() < 1e-4 * scale
    assert (grad32 - grad32_auto).abs().max() < 1e-5 * scale


def rotation(seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


@pytest.mark.parametrize("name", ["ethanol", "water_triclinic"])
def test_rotation_translation_invariance(name, model):
    atoms = structures()[name]
    e0, f0 = forces(model, atoms)
    moved = atoms.copy()
    rot = rotation()
    moved.set_cell(atoms.cell @ rot.T)
    moved.positions = atoms.positions @ rot.T + np.array([0.3, -1.2, 2.0])
    e1, f1 = forces(model, moved)
    assert abs(e1 - e0) < 1e-10
    assert np.abs(f1 - f0 @ rot.T).max() < 1e-10


def test_permutation_of_atoms_and_edges(model):
    atoms = structures()["acetamide"]
    e0, f0 = forces(model, atoms)
    perm = np.random.default_rng(0).permutation(len(atoms))
    e1, f1 = forces(model, atoms[perm])
    assert abs(e1 - e0) < 1e-10 and np.abs(f1 - f0[perm]).max() < 1e-10
    g = graph_from_atoms([atoms], model.elements, model.cutoff)
    order = torch.randperm(len(g.edge_i))
    energies, grad = model.energies_and_edge_gradients(g.species, g.edge_i[order], g.edge_j[order], g.r_ij[order])
    _, grad0 = run(model, g, "analytic")
    assert abs(float(energies.sum()) - e0) < 1e-10
    assert (grad - grad0[order]).abs().max() < 1e-10


def test_forces_match_finite_differences_and_hessian_is_symmetric(model):
    """Central differences of the energy give the forces; differences of the forces give a
    Hessian whose asymmetry ||J - J^T|| / ||J + J^T|| is at round-off level."""
    atoms = structures()["ethanol"]
    _, f0 = forces(model, atoms)
    h = 1e-5
    n = 3 * len(atoms)
    jac = np.zeros((n, n))
    fd_forces = np.zeros(n)
    for k in range(n):
        shifted = []
        for sign in (1, -1):
            a = atoms.copy()
            a.positions.reshape(-1)[k] += sign * h
            shifted.append(forces(model, a))
        fd_forces[k] = -(shifted[0][0] - shifted[1][0]) / (2 * h)
        jac[:, k] = -(shifted[0][1] - shifted[1][1]).reshape(-1) / (2 * h)
    assert np.abs(fd_forces - f0.reshape(-1)).max() < 1e-7
    asym = np.linalg.norm(jac - jac.T) / np.linalg.norm(jac + jac.T)
    assert asym < 1e-7, asym


def test_single_atom_and_no_edges(model):
    e, f = forces(model, Atoms("O", positions=[[0, 0, 0]]))
    assert np.isfinite(e) and np.all(f == 0)
    species = torch.tensor([0, 3, 1])
    empty = torch.zeros(0, dtype=torch.long)
    for method in ("analytic", "autograd"):
        energies, grad = model.energies_and_edge_gradients(species, empty, empty, torch.zeros(0, 3), None, method)
        assert energies.shape == (3,) and grad.shape == (0, 3)


def test_isolated_atom_keeps_its_energy(model):
    far = Atoms("OHHC", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0], [20, 20, 20]])
    lone = Atoms("C", positions=[[0, 0, 0]])
    g = graph_from_atoms([far], model.elements, model.cutoff)
    energies, _ = run(model, g, "analytic")
    e_lone, _ = run(model, graph_from_atoms([lone], model.elements, model.cutoff), "analytic")
    assert torch.allclose(energies[3], e_lone[0])
    _, f = forces(model, far)
    assert np.all(f[3] == 0)


def test_two_atoms_very_close(model):
    atoms = Atoms("HH", positions=[[0, 0, 0], [0.05, 0, 0]])
    g = graph_from_atoms([atoms], model.elements, model.cutoff)
    _, g_a = run(model, g, "analytic")
    _, g_r = run(model, g, "autograd")
    assert torch.isfinite(g_a).all()
    assert (g_a - g_r).abs().max() < 1e-10 * max(1.0, float(g_r.abs().max()))


def test_pair_at_and_near_cutoff_is_continuous(model):
    """Energy and force go smoothly to their no-neighbour values as a pair reaches the cutoff."""
    cutoff = model.cutoff

    def pair(d):
        atoms = Atoms("CO", positions=[[0, 0, 0], [d, 0, 0]])
        g = graph_from_atoms([atoms], model.elements, cutoff + 1.0)  # keep the edge even at d >= cutoff
        energies, grad = run(model, g, "analytic")
        return float(energies.sum()), forces_from_edge_gradients(g.edge_i, g.edge_j, grad, 2).numpy()

    e_far, f_far = pair(cutoff + 0.5)
    e_at, f_at = pair(cutoff)
    assert abs(e_at - e_far) < 1e-12 and np.abs(f_at).max() < 1e-12 and np.all(f_far == 0)
    for eps in (1e-3, 1e-4):
        e_in, f_in = pair(cutoff - eps)
        assert abs(e_in - e_far) < 50 * eps**2  # fc - 1 ~ eps^2 near the cutoff
        assert np.abs(f_in).max() < 50 * eps


def test_several_periodic_images_of_one_neighbour(model):
    """A cell much smaller than the cutoff: each neighbour appears through many images."""
    atoms = Atoms(
        "OH", positions=[[0, 0, 0], [1.1, 0.3, 0.2]], cell=[[2.1, 0, 0], [0.4, 2.3, 0], [0, 0.5, 2.6]], pbc=True
    )
    g = graph_from_atoms([atoms], model.elements, model.cutoff)
    pairs = torch.stack([g.edge_i, g.edge_j], 1)
    assert len(torch.unique(pairs, dim=0)) < len(pairs) / 10
    _, g_a = run(model, g, "analytic")
    _, g_r = run(model, g, "autograd")
    assert (g_a - g_r).abs().max() < 1e-10
    e0, f0 = forces(model, atoms)
    assert np.abs(f0.sum(0)).max() < 1e-10  # periodic: forces sum to zero


def test_element_outside_model_is_a_clear_error(model):
    with pytest.raises(ValueError, match="outside this model's elements"):
        model.validate_inputs(torch.tensor([0, 9]), torch.tensor([0]), torch.tensor([1]), torch.ones(1, 3))
    with pytest.raises(ValueError, match="not in the model's elements"):
        forces(model, Atoms("Si", positions=[[0, 0, 0]]))


@pytest.mark.parametrize(
    "case, message",
    [
        (dict(edge_j=np.array([0, 3])), "edge_j holds atom index 3, outside 0..2"),
        (dict(edge_i=np.array([-1, 0])), "edge_i holds atom index -1"),
        (dict(r_ij=np.ones((2, 2))), r"r_ij \[E,3\]"),
        (dict(edge_i=np.array([0])), r"edge_i \[E\]"),
        (dict(n_counted=4), "n_counted=4 must lie in 0..3"),
    ],
)
def test_validate_inputs_names_the_problem(model, case, message):
    """Host arrays (numpy here, as LAMMPS hands them over, r_ij in float64 before it goes to a
    float32 model) are checked where they arrive."""
    inputs = dict(
        species=np.array([0, 1, 3]), edge_i=np.array([0, 1]), edge_j=np.array([1, 2]), r_ij=np.ones((2, 3)), n_counted=3
    )
    model.validate_inputs(**inputs)
    model.to(torch.float32).validate_inputs(**inputs)
    with pytest.raises(ValueError, match=message):
        model.validate_inputs(**{**inputs, **case})


@pytest.mark.parametrize("method", ["analytic", "autograd"])
def test_the_model_call_reads_no_tensor_values(method):
    """The per-step call never synchronises with the host (a sync is what stops CUDA graphs): it
    runs on the meta device, where tensors have shapes but no values, so reading one (``.item()``,
    ``int(t)``) or a data-dependent shape (``t[mask]``, ``nonzero``) fails there."""
    model = make_model(n_features=8).to("meta")
    g = graph_from_atoms([structures()["ethanol"]], model.elements, model.cutoff)
    meta = [t.to("meta") for t in (g.species, g.edge_i, g.edge_j, g.r_ij)]
    energies, grad = model.energies_and_edge_gradients(*meta, 5, method)
    assert energies.shape == (5,) and grad.shape == g.r_ij.shape
    with pytest.raises(NotImplementedError):  # the probe can fail: validation reads values
        model.validate_inputs(*meta)


def test_unknown_method(model):
    with pytest.raises(ValueError, match="unknown method"):
        model.energies_and_edge_gradients(
            torch.tensor([0]),
            torch.zeros(0, dtype=torch.long),
            torch.zeros(0, dtype=torch.long),
            torch.zeros(0, 3),
            None,
            "magic",
        )


def test_device_and_dtype_are_those_of_the_weights():
    model = make_model(dtype=torch.float32)
    assert (model.device, model.dtype) == (torch.device("cpu"), torch.float32)
    assert model.to(torch.float64).dtype == torch.float64
    if torch.cuda.is_available():
        assert model.to("cuda").device.type == "cuda"
