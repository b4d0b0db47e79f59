"""Labelled structures for training: loading, splitting, cached graphs, batches, energy shifts.

A data set is an extended-XYZ file whose structures carry a teacher's total energy (eV) and
forces (eV/A), as written by ``mlff-distiller label`` (ASE reads them into a single-point
calculator). The neighbour list of every structure is built once, when a `GraphDataset` is
made, and batches are then concatenations of those cached graphs: an epoch costs no neighbour
search. A data set's tensors live on one device (`GraphDataset.to`, once), and its batches are
built there: the same code on a CPU and a GPU, which copies nothing per step.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols
from torch import Tensor

from ..model.graph import Graph, graph_from_atoms


# ----------------------------------------------------------------------------------------------
# Loading and checking
# ----------------------------------------------------------------------------------------------
def read_structures(path: str | Path) -> list[Atoms]:
    """All structures of an extended-XYZ file, each checked to carry an energy and forces."""
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no data set file {str(path)!r}")
    try:
        structures = ase.io.read(path, index=":")
    except Exception as exc:  # ASE raises many kinds for a malformed file
        raise ValueError(f"{path} is not a readable extended-XYZ file: {type(exc).__name__}: {exc}") from exc
    if not structures:
        raise ValueError(f"{path} holds no structures")
    check_labels(structures, source=str(path))
    return structures


def check_labels(structures: Sequence[Atoms], source: str = "the data set") -> None:
    """ValueError naming the first structure without a total energy or forces of the right shape."""
    for index, atoms in enumerate(structures):
        results = atoms.calc.results if atoms.calc is not None else {}
        missing = [key for key in ("energy", "forces") if key not in results]
        if missing:
            raise ValueError(
                f"structure {index} of {source} has no {' and no '.join(missing)}: training needs "
                "teacher energies and forces for every structure; label the structures first "
                "(mlff-distiller label)"
            )
        if np.shape(results["forces"]) != (len(atoms), 3):
            raise ValueError(
                f"structure {index} of {source} has forces of shape {np.shape(results['forces'])} "
                f"for {len(atoms)} atoms"
            )


def elements_in(structures: Sequence[Atoms]) -> list[str]:
    """The chemical symbols present, sorted by atomic number."""
    numbers = sorted({int(z) for atoms in structures for z in atoms.numbers})
    return [chemical_symbols[z] for z in numbers]


# ----------------------------------------------------------------------------------------------
# Splitting
# ----------------------------------------------------------------------------------------------
def split_indices(n: int, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Seeded random partition of range(n) into len(fractions)+1 parts.

    Part k (k < len(fractions)) gets round(fractions[k] * n) indices, the last part the rest;
    each part is sorted so that the split does not reorder the file.
    """
    if any(f < 0 for f in fractions) or sum(fractions) >= 1:
        raise ValueError(f"split fractions {list(fractions)} must be >= 0 and sum to less than 1")
    order = np.random.default_rng(seed).permutation(n)
    sizes = [int(round(f * n)) for f in fractions]
    bounds = np.cumsum([0] + sizes)
    parts = [order[bounds[k] : bounds[k + 1]] for k in range(len(sizes))] + [order[bounds[-1] :]]
    return [np.sort(part) for part in parts]


def split_structures(
    structures: Sequence[Atoms], fractions: Sequence[float], seed: int, group_key: str | None = None
) -> list[list[Atoms]]:
    """Seeded split into len(fractions)+1 lists; the held-out parts come first, training last.

    With ``group_key`` (e.g. ``"molecule"``) every group of structures sharing ``info[group_key]``
    is split on its own, so each molecule contributes the same fraction to every part.
    """
    groups: dict[object, list[int]] = defaultdict(list)
    for index, atoms in enumerate(structures):
        groups[atoms.info.get(group_key) if group_key else None].append(index)
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for group_number, members in enumerate(groups.values()):
        for part, chosen in zip(parts, split_indices(len(members), fractions, seed + group_number)):
            part.extend(members[k] for k in chosen)
    return [[structures[k] for k in sorted(part)] for part in parts]


# ----------------------------------------------------------------------------------------------
# Per-element energy shift and the energy scale
# ----------------------------------------------------------------------------------------------
def element_counts(structures: Sequence[Atoms], elements: Sequence[str]) -> np.ndarray:
    """[S, n_elements] number of atoms of each element in each structure."""
    column = {el: k for k, el in enumerate(elements)}
    counts = np.zeros((len(structures), len(elements)))
    for row, atoms in enumerate(structures):
        for symbol in atoms.get_chemical_symbols():
            counts[row, column[symbol]] += 1
    return counts


def fit_energy_shifts(
    structures: Sequence[Atoms], elements: Sequence[str], baseline: np.ndarray | None = None
) -> np.ndarray:
    """[n_elements] atomic reference energies (eV) minimising sum_s (E_s - B_s - counts_s . shift)^2,
    where B_s [S] is the energy of a fixed term of the model (its repulsion; default 0).

    Least squares with the minimum-norm solution, so that elements that always appear in the
    same ratio (a water-only set) or not at all still get finite, well-defined shifts.
    """
    counts = element_counts(structures, elements)
    energies = np.array([atoms.get_potential_energy() for atoms in structures])
    if baseline is not None:
        energies = energies - baseline
    shifts, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return shifts


def force_rms(structures: Sequence[Atoms]) -> float:
    """Root mean square of all force components (eV/A): the natural energy scale of the readout.

    A per-atom energy that varies by ~scale over ~1 A gives forces of that size, so scaling the
    network's output by it lets the freshly initialised network start at the right magnitude.
    """
    forces = np.concatenate([atoms.get_forces() for atoms in structures])
    return float(np.sqrt(np.mean(forces**2)))


# ----------------------------------------------------------------------------------------------
# Cached graphs and batches
# ----------------------------------------------------------------------------------------------
@dataclass
class Batch:
    """Several labelled structures as one concatenated graph (B structures, N atoms, E edges)."""

    graph: Graph
    energy: Tensor  # [B] float64 teacher energies (eV)
    forces: Tensor  # [N,3] teacher forces (eV/A), dtype of the graph
    n_atoms: Tensor  # [B] long

    @property
    def n_structures(self) -> int:
        return self.graph.n_structures

    def to(self, device: torch.device | str) -> "Batch":
        """The batch with every tensor on ``device`` (dtypes kept)."""
        return Batch(self.graph.to(device), self.energy.to(device), self.forces.to(device), self.n_atoms.to(device))


def as_device(device: torch.device | str) -> torch.device:
    """``device`` as a torch.device with its index: "cuda" means the current CUDA device."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def concatenate(batches: Sequence[Batch]) -> Batch:
    """One batch from several: atom indices of the edges are offset, ``batch`` renumbered."""
    offsets = np.cumsum([0] + [b.graph.species.shape[0] for b in batches[:-1]])
    structure_offsets = np.cumsum([0] + [b.n_structures for b in batches[:-1]])
    graphs = [b.graph for b in batches]
    graph = Graph(
        species=torch.cat([g.species for g in graphs]),
        edge_i=torch.cat([g.edge_i + int(o) for g, o in zip(graphs, offsets)]),
        edge_j=torch.cat([g.edge_j + int(o) for g, o in zip(graphs, offsets)]),
        r_ij=torch.cat([g.r_ij for g in graphs]),
        batch=torch.cat([g.batch + int(o) for g, o in zip(graphs, structure_offsets)]),
        n_structures=int(sum(g.n_structures for g in graphs)),
    )
    return Batch(
        graph,
        torch.cat([b.energy for b in batches]),
        torch.cat([b.forces for b in batches]),
        torch.cat([b.n_atoms for b in batches]),
    )


def labelled_graph(atoms: Atoms, elements: Sequence[str], cutoff: float, dtype: torch.dtype) -> Batch:
    """A one-structure batch: the structure's graph (neighbour list within ``cutoff``) and labels."""
    graph = graph_from_atoms([atoms], elements, cutoff, dtype)
    return Batch(
        graph,
        torch.tensor([atoms.get_potential_energy()], dtype=torch.float64),
        torch.as_tensor(atoms.get_forces(), dtype=dtype),
        torch.tensor([len(atoms)]),
    )


class GraphDataset:
    """Labelled structures with their graphs built once; hands out shuffled or ordered batches."""

    def __init__(
        self, structures: Sequence[Atoms], elements: Sequence[str], cutoff: float, dtype: torch.dtype = torch.float32
    ):
        check_labels(structures)
        self.structures = list(structures)
        self.elements = list(elements)
        self.samples = [labelled_graph(atoms, self.elements, cutoff, dtype) for atoms in self.structures]

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def device(self) -> torch.device:
        return self.samples[0].energy.device if self.samples else torch.device("cpu")

    def to(self, device: torch.device | str) -> "GraphDataset":
        """This data set with its graphs and labels on ``device``: itself if they are there already,
        else a copy (sharing the structures). Move a data set once, before training; its batches are
        then concatenated on that device."""
        device = as_device(device)
        if self.device == device:
            return self
        moved = copy.copy(self)
        moved.samples = [sample.to(device) for sample in self.samples]
        return moved

    def batches(self, batch_size: int, rng: np.random.Generator | None = None) -> list[Batch]:
        """Batches of ``batch_size`` structures (the last may be smaller); shuffled when given a rng."""
        order = rng.permutation(len(self.samples)) if rng is not None else np.arange(len(self.samples))
        return [
            concatenate([self.samples[k] for k in order[start : start + batch_size]])
            for start in range(0, len(order), batch_size)
        ]
