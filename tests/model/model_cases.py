"""Models and structures shared by the model tests."""

import numpy as np
import torch
from ase import Atoms
from ase.build import molecule
from ase.neighborlist import neighbor_list

from mlff_distiller.model.graph import species_indices
from mlff_distiller.model.painn import PaiNN, PaiNNConfig


def make_model(n_features=16, elements=("H", "C", "N", "O"), dtype=torch.float64, seed=0, **kw):
    """A small model with non-trivial weights (shift and scale too) for derivative tests."""
    torch.manual_seed(seed)
    model = PaiNN(PaiNNConfig(elements=list(elements), n_features=n_features, **kw))
    with torch.no_grad():
        model.readout.shift.uniform_(-2, 2)
        model.readout.scale.uniform_(0.5, 1.5)
    return model.to(dtype).requires_grad_(False)


def water_box(n_side=2, seed=1, cell=None):
    """A small periodic box of water molecules; ``cell`` (3x3) makes it triclinic."""
    rng = np.random.default_rng(seed)
    length = 3.1 * n_side
    positions, symbols = [], []
    for ix in range(n_side):
        for iy in range(n_side):
            for iz in range(n_side):
                centre = (np.array([ix, iy, iz]) + 0.5) * 3.1 + rng.normal(0, 0.2, 3)
                rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
                local = np.array([[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]) @ rot.T
                positions += list(centre + local)
                symbols += ["O", "H", "H"]
    atoms = Atoms(symbols, positions=positions, cell=np.diag([length] * 3), pbc=True)
    if cell is not None:
        atoms.set_cell(cell, scale_atoms=True)
    return atoms


def structures():
    """Molecules and periodic boxes the whole-model tests run on."""
    ethanol = molecule("CH3CH2OH")
    acetamide = molecule("CH3CONH2")
    ortho = water_box()
    tri = water_box(cell=[[6.2, 0, 0], [1.5, 6.0, 0], [0.8, 1.1, 6.4]])
    return {"ethanol": ethanol, "acetamide": acetamide, "water_ortho": ortho, "water_triclinic": tri}


def ghost_graph(atoms, cutoff):
    """Local atoms 0..N-1 plus one ghost per periodic image that is some local atom's neighbour;
    edges only into local atoms, as a LAMMPS rank without ghost neighbour lists has them."""
    i, j, shift = neighbor_list("ijS", atoms, cutoff)
    images = {}
    owner = list(range(len(atoms)))
    sender = np.empty(len(j), dtype=np.int64)
    for e, (jj, s) in enumerate(zip(j, map(tuple, shift))):
        if s == (0, 0, 0):
            sender[e] = jj
            continue
        key = (jj, s)
        if key not in images:
            images[key] = len(owner)
            owner.append(jj)
        sender[e] = images[key]
    positions = np.array([atoms.positions[o] + np.dot(s, atoms.cell) for (o, s) in images])
    all_positions = np.concatenate([atoms.positions, positions.reshape(-1, 3)])
    r_ij = all_positions[sender] - all_positions[i]
    species = species_indices(np.array(atoms.get_chemical_symbols())[owner], ["H", "C", "N", "O"])
    return (
        torch.from_numpy(species),
        torch.from_numpy(i.astype(np.int64)),
        torch.from_numpy(sender),
        torch.from_numpy(r_ij),
        torch.tensor(owner),
    )
