"""The model with its short-range repulsion: analytic forces equal autograd's and finite
differences, atoms pushed together repel, every path (halo, padded buckets, model files) carries
it, and files written without it load unchanged."""

import numpy as np
import pytest
from ase import Atoms

from mlff_distiller.model.graph import forces_from_edge_gradients, graph_from_atoms
from mlff_distiller.model.io import load_model, save_model
from mlff_distiller.model.replay import GraphReplay

from model_cases import ghost_graph, make_model, structures, water_box
from test_halo import python_halo


def repulsive_model(**kw):
    return make_model(n_features=16, repulsion=True, **kw)


def energy_and_forces(model, atoms, method="analytic"):
    g = graph_from_atoms([atoms], model.elements, model.cutoff)
    energies, grad = model.energies_and_edge_gradients(g.species, g.edge_i, g.edge_j, g.r_ij, method=method)
    return float(energies.sum()), forces_from_edge_gradients(g.edge_i, g.edge_j, grad, len(atoms)).numpy()


def squeezed(atoms, factor):
    """The structure with every interatomic distance multiplied by ``factor``."""
    atoms = atoms.copy()
    atoms.positions = atoms.positions.mean(0) + factor * (atoms.positions - atoms.positions.mean(0))
    return atoms


@pytest.mark.parametrize("name", list(structures()))
def test_analytic_equals_autograd(name):
    model = repulsive_model()
    atoms = squeezed(structures()[name], 0.7)  # bonds well inside the repulsion's range
    g = graph_from_atoms([atoms], model.elements, model.cutoff)
    for n_counted in (None, 4):
        e_a, g_a = model.energies_and_edge_gradients(g.species, g.edge_i, g.edge_j, g.r_ij, n_counted, "analytic")
        e_r, g_r = model.energies_and_edge_gradients(g.species, g.edge_i, g.edge_j, g.r_ij, n_counted, "autograd")
        assert (e_a - e_r).abs().max() < 1e-12  # one forward, but the analytic one may run fused
        assert (g_a - g_r).abs().max() < 1e-10 * max(1.0, float(g_r.abs().max()))


def test_repulsion_changes_the_energy_only_inside_bonding_distance():
    with_term, without = repulsive_model(), make_model(n_features=16)
    atoms = structures()["ethanol"]
    e_plain, _ = energy_and_forces(without, squeezed(atoms, 1.5))
    e_rep, _ = energy_and_forces(with_term, squeezed(atoms, 1.5))
    assert e_rep == e_plain  # every pair beyond the sum of covalent radii: exactly the network
    e_plain, _ = energy_and_forces(without, squeezed(atoms, 0.7))
    e_rep, _ = energy_and_forces(with_term, squeezed(atoms, 0.7))
    assert e_rep - e_plain > 1.0


def test_forces_match_finite_differences():
    model = repulsive_model()
    atoms = squeezed(structures()["acetamide"], 0.75)
    _, f0 = energy_and_forces(model, atoms)
    h = 1e-5
    fd = np.zeros(3 * len(atoms))
    for k in range(fd.size):
        energies = []
        for sign in (1, -1):
            a = atoms.copy()
            a.positions.reshape(-1)[k] += sign * h
            energies.append(energy_and_forces(model, a)[0])
        fd[k] = -(energies[0] - energies[1]) / (2 * h)
    assert np.abs(f0).max() > 10  # large repulsive forces, compared to 1e-7 relative
    assert np.abs(fd - f0.reshape(-1)).max() < 1e-7 * np.abs(f0).max()


@pytest.mark.parametrize("reach", [0.75, 1.0])
def test_repulsion_ends_at_its_reach(reach):
    """The pair's energy with the term minus without it: zero from reach x the covalent sum out,
    positive just inside, for each reach."""
    from ase.data import covalent_radii

    with_term, without = repulsive_model(repulsion_reach=reach), make_model(n_features=16)
    end = reach * (covalent_radii[8] + covalent_radii[1])

    def added(d):
        pair = Atoms("OH", positions=[[0, 0, 0], [d, 0, 0]])
        return energy_and_forces(with_term, pair)[0] - energy_and_forces(without, pair)[0]

    assert added(end * 1.001) == 0.0 and added(end * 1.2) == 0.0
    assert 0.0 < added(end * 0.97) < added(end * 0.9) < added(end * 0.8)


def test_a_file_written_before_the_reach_existed_loads_with_reach_1(tmp_path):
    import torch

    model = repulsive_model()
    path = save_model(model, tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    del payload["config"]["repulsion_reach"]
    torch.save(payload, path)
    loaded = load_model(path)
    assert loaded.config.repulsion_reach == 1.0
    atoms = squeezed(structures()["ethanol"], 0.9)
    assert energy_and_forces(model, atoms)[0] == energy_and_forces(loaded, atoms)[0]


def test_a_reach_outside_its_range_is_refused():
    with pytest.raises(ValueError, match="fraction of the covalent radii"):
        repulsive_model(repulsion_reach=0.0)


@pytest.mark.parametrize("pair", ["HH", "CH", "CO", "NO", "OH"])
def test_atoms_pushed_together_repel(pair):
    """From 60% of the sum of covalent radii down to 0.1 A the energy rises and the force pushes
    the atoms apart; the network alone (random weights) does neither reliably."""
    from ase.data import atomic_numbers, covalent_radii

    model = repulsive_model()
    radii = sum(covalent_radii[atomic_numbers[el]] for el in Atoms(pair).get_chemical_symbols())
    distances = np.linspace(0.6 * radii, 0.1, 30)
    energies, forces = zip(
        *(energy_and_forces(model, Atoms(pair, positions=[[0, 0, 0], [d, 0, 0]])) for d in distances)
    )
    assert np.all(np.diff(energies) > 0)
    assert all(f[0, 0] < 0 < f[1, 0] for f in forces)
    assert energies[-1] - energies[0] > 10


@pytest.mark.parametrize("method", ["analytic", "autograd"])
def test_halo_mode_counts_each_pair_once(method):
    """Ghost images carry no edges of their own: each rank counts its half of every pair."""
    model = repulsive_model()
    atoms = squeezed(water_box(), 0.8)
    atoms.set_cell(atoms.cell * 0.8)
    g = graph_from_atoms([atoms], model.elements, model.cutoff)
    e_ref, grad_ref = model.energies_and_edge_gradients(g.species, g.edge_i, g.edge_j, g.r_ij, method="autograd")
    species, edge_i, edge_j, r_ij, owner = ghost_graph(atoms, model.cutoff)
    energies, grad = model.energies_and_edge_gradients(
        species, edge_i, edge_j, r_ij, len(atoms), method, python_halo(owner, len(atoms))
    )
    assert (energies - e_ref).abs().max() < 1e-12
    assert (grad - grad_ref).abs().max() < 1e-10 * max(1.0, float(grad_ref.abs().max()))


def test_padded_buckets_carry_the_repulsion_and_padding_adds_nothing():
    model = repulsive_model()
    args = [graph_from_atoms([squeezed(structures()["acetamide"], 0.7)], model.elements, model.cutoff)]
    g = args[0]
    e_ref, g_ref = model.energies_and_edge_gradients(g.species, g.edge_i, g.edge_j, g.r_ij)
    energies, grad = GraphReplay(model)(g.species, g.edge_i, g.edge_j, g.r_ij)
    assert (energies - e_ref).abs().max() < 1e-12
    assert (grad - g_ref).abs().max() < 1e-12 * float(g_ref.abs().max())


def test_model_file_round_trip(tmp_path):
    model = repulsive_model()
    loaded = load_model(save_model(model, tmp_path / "m.pt"))
    assert loaded.config.repulsion and loaded.repulsion is not None
    atoms = squeezed(structures()["ethanol"], 0.7)
    e0, f0 = energy_and_forces(model, atoms)
    e1, f1 = energy_and_forces(loaded, atoms)
    assert e0 == e1 and np.array_equal(f0, f1)


def test_shipped_v1_file_loads_without_repulsion():
    model = load_model("default")
    assert not model.config.repulsion and model.repulsion is None
    assert not any("repulsion" in key for key in model.state_dict())


@pytest.mark.slow
def test_compiled_buckets_on_the_cpu_carry_the_repulsion():
    """inductor's C++ code over padded buckets (the default CPU path in LAMMPS) equals eager."""
    model = repulsive_model()
    atoms = squeezed(water_box(), 0.8)
    atoms.set_cell(atoms.cell * 0.8)
    g = graph_from_atoms([atoms], model.elements, model.cutoff)
    args = (g.species, g.edge_i, g.edge_j, g.r_ij)
    energies, grad = GraphReplay(model, "analytic", graphs=False, fuse=True)(*args)
    e_ref, g_ref = model.energies_and_edge_gradients(*args)
    assert (energies - e_ref).abs().max() < 1e-10 * e_ref.abs().max()
    assert (grad - g_ref).abs().max() < 1e-10 * g_ref.abs().max()
