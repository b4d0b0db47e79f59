"""Priors: energy terms without weights that the student adds to its network's energy, each with
its forward and its analytic backward side by side, under the convention of ``blocks.py``
(``forward(...) -> (outputs, ctx)``, ``backward(ctx, grad_outputs) -> grad_inputs``).

``ZBLRepulsion``: screened nuclear repulsion inside bonding distance (``PaiNNConfig.repulsion``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

COULOMB_EV_A = 14.399645  # e^2 / (4 pi eps0) in eV A
# Ziegler-Biersack-Littmark universal screening: phi(x) = sum_k c_k exp(-b_k x), a in A
ZBL_COEFFICIENTS = (0.18175, 0.50986, 0.28022, 0.02817)
ZBL_EXPONENTS = (3.19980, 0.94229, 0.40290, 0.20162)
ZBL_LENGTH = 0.46850
ZBL_ENVELOPE_POWER = 6


class ZBLRepulsionContext(NamedTuple):
    d: Tensor  # [E]
    inside: Tensor  # [E] bool, d < rmax
    coulomb: Tensor  # [E] k Z_i Z_j / (2 d)
    phi: Tensor  # [E]
    dphi_dd: Tensor  # [E]
    env: Tensor  # [E]
    denv_dd: Tensor  # [E]


class ZBLRepulsion(nn.Module):
    """Screened nuclear repulsion (ZBL), switched off smoothly inside bonding distance.

    Pair energy  e(d) = k Z_i Z_j / d * phi(d / a_ij) * env(d / rmax_ij),
    a_ij = 0.4685 / (Z_i^0.23 + Z_j^0.23),  rmax_ij = reach (R_cov,i + R_cov,j) (ASE's covalent radii),
    env(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2) for x < 1, else 0 (p = 6:
    value, slope and curvature vanish at rmax). Each pair comes as two directed edges, each
    carrying half of e, so per-atom energies sum to the pair energy and a rank that owns only one
    of the two atoms counts exactly its half. The term has no weights: it only acts inside
    bonding distance, where a network trained on near-equilibrium data has no reason to repel,
    and the network learns the teacher minus this term. With reach 1 it reaches into every bond
    (bonds sit at about 0.9-1.03 of the covalent sum), where the network has to cancel its steep
    curvature; a shorter reach keeps it below the distances that MD and the training data visit
    (docs/training.md, "Short-range repulsion").

    forward: d [E], species [N], edge_i [E], edge_j [E] -> half pair energies [E] (eV).
    backward: g [E] -> g_d [E].
    """

    def __init__(self, elements: list[str], reach: float = 1.0):
        super().__init__()
        if not 0.0 < reach <= 1.5:
            raise ValueError(
                f"repulsion reach {reach} is outside (0, 1.5]: it is a fraction of the covalent radii summed"
            )
        from ase.data import atomic_numbers, covalent_radii

        z = torch.tensor([float(atomic_numbers[el]) for el in elements], dtype=torch.float64)
        radius = torch.tensor([covalent_radii[atomic_numbers[el]] for el in elements], dtype=torch.float64)
        screening = z**0.23
        # per element pair, flattened [n_el * n_el]; not saved in model files (they follow from
        # the elements), so files written without repulsion load unchanged
        self.register_buffer("prefactor", (0.5 * COULOMB_EV_A * torch.outer(z, z)).flatten(), persistent=False)
        self.register_buffer(
            "inv_screening_length", ((screening[:, None] + screening[None, :]) / ZBL_LENGTH).flatten(), persistent=False
        )
        self.register_buffer(
            "inv_rmax", (1.0 / (reach * (radius[:, None] + radius[None, :]))).flatten(), persistent=False
        )
        self.n_elements = len(elements)

    def pair_parameters(self, species: Tensor, edge_i: Tensor, edge_j: Tensor):
        pair = species.index_select(0, edge_i) * self.n_elements + species.index_select(0, edge_j)
        return (
            self.prefactor.index_select(0, pair),
            self.inv_screening_length.index_select(0, pair),
            self.inv_rmax.index_select(0, pair),
        )

    @staticmethod
    def envelope(x: Tensor):
        """env(x) and d env / dx for x < 1 (callers mask x >= 1)."""
        p = ZBL_ENVELOPE_POWER
        x_pm1 = x ** (p - 1)
        env = 1.0 - x_pm1 * x * ((p + 1) * (p + 2) / 2 - x * (p * (p + 2) - x * (p * (p + 1) / 2)))
        denv = -(p * (p + 1) * (p + 2) / 2) * x_pm1 * (1.0 - x) ** 2
        return env, denv

    def forward(self, d: Tensor, species: Tensor, edge_i: Tensor, edge_j: Tensor):
        prefactor, inv_a, inv_rmax = self.pair_parameters(species, edge_i, edge_j)
        x = d * inv_a
        terms = [c * torch.exp(-b * x) for c, b in zip(ZBL_COEFFICIENTS, ZBL_EXPONENTS)]
        phi = sum(terms)
        dphi_dx = -sum(b * t for b, t in zip(ZBL_EXPONENTS, terms))
        y = d * inv_rmax
        inside = y < 1.0
        # clamped so that masked-out edges (far pairs, padding) stay finite in the unused branch
        env, denv_dy = self.envelope(torch.clamp(y, max=1.0))
        coulomb = prefactor / d
        energy = torch.where(inside, coulomb * phi * env, torch.zeros_like(d))
        return energy, ZBLRepulsionContext(d, inside, coulomb, phi, dphi_dx * inv_a, env, denv_dy * inv_rmax)

    def derivative(self, ctx: ZBLRepulsionContext) -> Tensor:
        """d e / d d  ->  [E]:  coulomb (phi' env + phi env' - phi env / d)."""
        d, phi, env = ctx.d, ctx.phi, ctx.env
        inner = ctx.dphi_dd * env + phi * ctx.denv_dd - phi * env / d
        return torch.where(ctx.inside, ctx.coulomb * inner, torch.zeros_like(d))

    def backward(self, ctx: ZBLRepulsionContext, grad_energy: Tensor) -> Tensor:
        return grad_energy * self.derivative(ctx)
