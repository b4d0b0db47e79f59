"""What the rest of the project needs from a student model: ``StudentModel``.

Training, evaluation, the ASE calculator, the step replay and the LAMMPS coupling use a student
only through these members, so another architecture that has them (and is registered in
``architectures.py`` for its model files) runs everywhere PaiNN does. A student is also a
``torch.nn.Module``: ``to``, ``state_dict``/``load_state_dict``, ``parameters``, ``train``/``eval``
and ``requires_grad_`` are used as torch defines them, and ``io.load_model`` sets ``metadata``
(the dict saved with the model file).

Conventions (``graph.py``, LAMMPS's ML-IAP): ``N`` atoms, ``E`` directed edges; edge (i, j) means
"j sends to i", r_ij = x_j - x_i; species index the model's ``elements``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch
from torch import Tensor

if TYPE_CHECKING:
    from .halo import Halo


@runtime_checkable
class StudentConfig(Protocol):
    """The hyper-parameters of a student, stored in its model file as ``to_dict()`` (plain types
    only: files load with ``weights_only=True``), from which its architecture rebuilds it."""

    elements: list[str]
    cutoff: float

    def to_dict(self) -> dict: ...


@runtime_checkable
class StudentModel(Protocol):
    """A student force field: per-atom energies and dE/dr_ij of a graph of atoms and edges."""

    config: StudentConfig

    @property
    def elements(self) -> list[str]:
        """The elements it knows, in the order of the species indices."""
        ...

    @property
    def cutoff(self) -> float:
        """Edges longer than this (A) contribute nothing (their terms vanish smoothly there)."""
        ...

    @property
    def n_message_passes(self) -> int:
        """How many times features pass along edges: an atom's energy depends on atoms this many
        edges away, and a halo exchange runs between consecutive passes (n_message_passes - 1 a call)."""
        ...

    @property
    def dtype(self) -> torch.dtype:
        """The precision it runs in, the dtype r_ij must have."""
        ...

    @property
    def device(self) -> torch.device:
        """Where its weights live: inputs go there."""
        ...

    @property
    def reference_energies(self) -> Tensor:
        """[len(elements)] energy (eV) each element's atoms start from, to which the network adds
        what their neighbours contribute."""
        ...

    def set_reference_energies(self, energies, scale: float) -> None:
        """Training's start: ``energies`` [len(elements)] become ``reference_energies`` and
        ``scale`` (eV) the size of what the network adds (e.g. the force RMS of the data)."""
        ...

    def prior_energy(self, species: Tensor, edge_i: Tensor, edge_j: Tensor, r_ij: Tensor) -> Tensor | None:
        """The summed energy (eV, a float64 scalar) of its terms without weights (PaiNN: the ZBL
        repulsion) over the edges of a graph, None for a model without such terms: training fits
        the reference energies to the teacher minus this. Computed in the precision of those
        terms, whatever the model's: pass r_ij in float64."""
        ...

    def energies_and_edge_gradients(
        self,
        species: Tensor,
        edge_i: Tensor,
        edge_j: Tensor,
        r_ij: Tensor,
        n_counted: int | None = None,
        method: str = "analytic",
        halo: Halo | None = None,
    ) -> tuple[Tensor, Tensor]:
        """species [N] (long), edge_i [E], edge_j [E], r_ij [E,3] (in ``dtype``); the leading
        ``n_counted`` atoms (default N) count, the others only send; ``method`` "analytic" or
        "autograd"; ``halo``: feature exchange with ghost atoms between message passes.
        Returns energies [n_counted] and dE/dr_ij [E,3] of their sum, in ``dtype``.
        Checks the layout (``check_layout``), never values."""
        ...

    def energies_and_weighted_edge_gradients(
        self,
        species: Tensor,
        edge_i: Tensor,
        edge_j: Tensor,
        r_ij: Tensor,
        weights: Tensor,
        method: str = "analytic",
        halo: Halo | None = None,
        n_owned: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The shape-static core, no checks: energies [N] of all atoms and dE/dr_ij [E,3] of
        sum(weights [N] * energies). ``n_owned`` (with a halo): the leading rows holding every
        counted atom; the other rows are ghosts the exchange overwrites."""
        ...

    def check_layout(self, species: Tensor, edge_i: Tensor, edge_j: Tensor, r_ij: Tensor, n_counted: int) -> None:
        """ValueError for wrong shapes, n_counted or dtype: metadata only, free on any device."""
        ...

    def validate_inputs(self, species, edge_i, edge_j, r_ij, n_counted: int | None = None) -> None:
        """ValueError naming the problem for inputs that do not fit (shapes, element and atom
        indices): reads every value, so call it where inputs arrive, once per neighbour list."""
        ...
