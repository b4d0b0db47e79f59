"""The LAMMPS force step compiled ahead of time: the package behind `pair_style mliap/aoti`.

``ForceStep`` is everything one MD step asks of the model, from LAMMPS's arrays to what LAMMPS
adds: pair vectors from positions, the cutoff mask, the student's energies and dE/dr_ij, per-atom
forces (f_i += fij, f_j -= fij), per-atom energies, the energy and the virial (global and per
atom). ``compile_package`` exports it with ``torch.export`` (sizes dynamic) and compiles it with
AOTInductor into one ``.pt2`` file, which the plugin (``lammps_plugin/pair_mliap_aoti.cpp``) loads
with libtorch and calls from C++: no Python interpreter on the step path.

The inputs and outputs, in order, are the contract with the C++ side (``PACKAGE_INPUTS``,
``PACKAGE_OUTPUTS``; ``aoti_protocol.h`` there). The C++ side appends one padding atom to every
call, so that no size is ever 0 (export specialises sizes 0 and 1): the padding atom is of element
0, sits at its own position, is its own ghost and owner, and its pairs join it to itself, which the
mask drops (i == j). Pairs beyond the cutoff, pairs with a NULL-type end and such padding pairs are
moved ``PADDING_DISTANCE`` cutoffs apart, where the model's filters and their derivatives are
exactly 0: they add exactly nothing (``tests/model/test_replay.py`` checks that for the buckets of
``replay.py``, ``tests/lammps/test_aoti.py`` for this step).

Ghost atoms get their features after each layer by a halo exchange. A package holds the step
twice (``PACKAGE_MODELS``), the one decision between them being the exchange:
* one MPI rank: every ghost is a periodic image of a local atom, and the exchange is a gather from
  ``owners`` (``GatherHalo``) fused into the compiled code;
* several ranks: the compiled code calls the operator ``mlff_plugin::halo_exchange``
  (``PluginHalo``), which the plugin implements in C++ with LAMMPS's communication, as `mliap/halo`
  does (``ghosts``/``owners`` then hold only the padding atom). Its Python implementation here is
  the one-rank gather, for export and tests. An operator call leaves the compiled code and goes
  through torch's dispatcher four times a step, so the one-rank step keeps the fused gather.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn
from torch._inductor.package import package_aoti

from .. import __version__
from ..files import atomic_path
from ..model import fused
from ..model.graph import forces_from_edge_gradients
from ..model.halo import GatherHalo, Halo
from ..model.io import load_model
from ..model.painn import DTYPES, EXPORTED_MAX_EDGES, METHODS, PaiNN
from ..model.replay import PADDING_DISTANCE

AOTI_FORMAT = "mlff-distiller-aoti"
AOTI_VERSION = 2  # 2: the models renamed (PACKAGE_MODELS)
PACKAGE_SUFFIX = ".pt2"
# The package's call, in order: the contract with lammps_plugin/aoti_protocol.h (tests check both)
PACKAGE_INPUTS = ("x_local", "x_ghost", "species", "pair_i", "pair_j", "ghosts", "owners")
PACKAGE_OUTPUTS = ("forces", "eatoms", "energy", "virial", "vatom")
# the models in a package, by the exchange they use: one MPI rank, several ranks. Neither name may
# begin with the other: torch 2.11's package loader takes every file whose path begins with
# data/aotinductor/<name>, and so loaded "model_ranks" for "model" (H100 profiles, 2026-12-05)
PACKAGE_MODELS = {"gather": "one_rank", "operator": "ranks"}
# metadata key: "1" when the package calls the fused kernels (model/fused), which the plugin then loads
FUSED_KERNELS_KEY = "fused_kernels"
# LAMMPS's virial order (xx, yy, zz, xy, xz, yz): the components of r (x) fij that it sums
VIRIAL_ROWS = (0, 1, 2, 0, 0, 1)
VIRIAL_COLUMNS = (0, 1, 2, 1, 2, 2)


@torch.library.custom_op("mlff_plugin::halo_exchange", mutates_args=())
def plugin_halo_exchange(rows: Tensor, ghosts: Tensor, owners: Tensor, reverse: bool) -> Tensor:
    """rows [T,W] with ghost rows copied from their owners (reverse: owners += ghost rows, ghost
    rows 0). In Python, the one-rank exchange (``GatherHalo``); the plugin's C++ implementation
    replaces it inside LAMMPS and also serves several ranks."""
    out = GatherHalo(ghosts, owners).primitive(rows, reverse)
    return out.clone() if out is rows else out  # an operator's output must not be its input


@plugin_halo_exchange.register_fake
def _(rows: Tensor, ghosts: Tensor, owners: Tensor, reverse: bool) -> Tensor:
    return torch.empty_like(rows)


class PluginHalo(Halo):
    """The halo of a package: both primitives are calls of ``mlff_plugin::halo_exchange``."""

    def __init__(self, ghosts: Tensor, owners: Tensor):
        super().__init__(
            lambda rows: plugin_halo_exchange(rows, ghosts, owners, False),
            lambda rows: plugin_halo_exchange(rows, ghosts, owners, True),
        )

    def exchange(self, rows: Tensor, reverse: bool) -> Tensor:
        return self.primitive(rows, reverse)  # the analytic backward calls the reverse itself


class ForceStep(nn.Module):
    """One LAMMPS force call of a student model, shapes dynamic (T atoms, P pairs, G ghosts).

    forward(x_local [L,3] float64, x_ghost [T-L,3] float64 (ghosts, then the padding atom),
    species [T] int64 (-1: NULL type), pair_i [P] int64, pair_j [P] int64 (i receives from j; j
    may be a ghost), ghosts [G] int64, owners [G] int64 (the local atom each ghost copies))
      -> forces [T,3], eatoms [T] (0 beyond the local atoms and for NULL types), energy [],
         virial [6], vatom [T,6], all float64.
    The model runs in its own dtype; pair vectors are taken in float64 and sums are made in float64.
    exchange: "gather" (one rank) or "operator" (several ranks), see the module doc.
    """

    def __init__(self, model: PaiNN, method: str = "analytic", exchange: str = "gather"):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}: use one of {METHODS}")
        if exchange not in PACKAGE_MODELS:
            raise ValueError(f"unknown exchange {exchange!r}: use one of {tuple(PACKAGE_MODELS)}")
        self.model, self.method = model, method
        self.halo = GatherHalo if exchange == "gather" else PluginHalo
        self.register_buffer("far", torch.tensor([PADDING_DISTANCE * model.cutoff, 0.0, 0.0], dtype=torch.float64))
        self.register_buffer("virial_rows", torch.tensor(VIRIAL_ROWS))
        self.register_buffer("virial_columns", torch.tensor(VIRIAL_COLUMNS))

    def forward(
        self, x_local: Tensor, x_ghost: Tensor, species: Tensor, pair_i: Tensor, pair_j: Tensor, ghosts, owners
    ):
        dtype = self.model.dtype
        n_local = x_local.shape[0]
        x = torch.cat((x_local, x_ghost))
        known = species >= 0
        r_ij = self.pair_vectors(x, known, pair_i, pair_j)
        weights = (torch.arange(x.shape[0], device=x.device) < n_local) & known
        energies, grad = self.model.energies_and_weighted_edge_gradients(
            species.clamp(min=0),
            pair_i,
            pair_j,
            r_ij.to(dtype),
            weights.to(dtype),
            self.method,
            self.halo(ghosts, owners),
            n_local,  # the update blocks skip the ghost rows, which the next exchange overwrites
        )
        fij = grad.to(torch.float64)
        eatoms = energies.to(torch.float64) * weights
        forces = forces_from_edge_gradients(pair_i, pair_j, fij, x.shape[0])
        v = -0.5 * r_ij.index_select(1, self.virial_rows) * fij.index_select(1, self.virial_columns)  # [P,6], half each
        vatom = x.new_zeros(x.shape[0], 6).index_add(0, pair_i, v).index_add(0, pair_j, v)
        # summed over atoms, not pairs: inductor fused a sum over the pairs into the scatter's
        # kernel, which then ran on 6 programs, 6 ms of a 19 ms step (8,232 waters, H100, 2026-12-05)
        return forces, eatoms, eatoms.sum(), vatom.sum(0), vatom

    def pair_vectors(self, x: Tensor, known: Tensor, pair_i: Tensor, pair_j: Tensor) -> Tensor:
        """r_ij = x_j - x_i [P,3] for the pairs the model sees, ``far`` for the others (beyond the
        cutoff, a NULL-type end, padding), whose fij then come out exactly 0."""
        r_ij = x.index_select(0, pair_j) - x.index_select(0, pair_i)
        inside = (
            ((r_ij * r_ij).sum(1) < self.model.cutoff**2)
            & known.index_select(0, pair_i)
            & known.index_select(0, pair_j)
            & (pair_i != pair_j)
        )
        return torch.where(inside[:, None], r_ij, self.far)


def example_inputs(model: PaiNN, device: str) -> tuple[Tensor, ...]:
    """A small call to trace with: 6 local atoms (one of a NULL type) and 4 ghosts, every pair
    among them, plus the padding atom that the C++ side adds (``PACKAGE_INPUTS``)."""
    generator = torch.Generator().manual_seed(0)
    n_local, n_ghost = 6, 4
    n = n_local + n_ghost + 1
    x = torch.rand(n, 3, generator=generator, dtype=torch.float64) * 3.0
    species = torch.randint(0, len(model.elements), (n,), generator=generator)
    species[n_local - 1] = -1
    species[n_local : n - 1] = species[:n_ghost]
    local = torch.arange(n_local)
    pair_i = local.repeat_interleave(n - 2)
    pair_j = torch.cat([torch.cat((torch.arange(i), torch.arange(i + 1, n - 1))) for i in range(n_local)])
    pad = torch.tensor([n - 1])
    ghosts = torch.cat((torch.arange(n_local, n - 1), pad))
    owners = torch.cat((torch.arange(n_ghost), pad))
    tensors = (x[:n_local], x[n_local:], species, torch.cat((pair_i, pad)), torch.cat((pair_j, pad)), ghosts, owners)
    return tuple(t.to(device) for t in tensors)


def dynamic_shapes() -> dict:
    """Local atoms (none on an empty rank), ghost rows (at least the padding atom), pairs and
    ghosts vary from call to call; pairs up to the one chunk of an exported model
    (``PaiNN.edge_chunk``); species has as many rows as the two position blocks together."""
    local = torch.export.Dim("local", min=0)
    ghost_rows = torch.export.Dim("ghost_rows", min=1)
    pairs = torch.export.Dim("pairs", min=1, max=EXPORTED_MAX_EDGES)
    ghosts = torch.export.Dim("ghosts", min=1)
    return {
        "x_local": {0: local},
        "x_ghost": {0: ghost_rows},
        "species": {0: torch.export.Dim.AUTO},
        "pair_i": {0: pairs},
        "pair_j": {0: pairs},
        "ghosts": {0: ghosts},
        "owners": {0: ghosts},
    }


def package_metadata(model: PaiNN, method: str, model_bytes: bytes, threads: int) -> dict[str, str]:
    """What the plugin checks before it runs a package (all strings: AOTInductor's metadata)."""
    return {
        # a CUDA package carries its Triton kernels; a CPU one calls the library's operators
        FUSED_KERNELS_KEY: str(int(model.device.type == "cpu" and fused.serves("cpu"))),
        "mlff_format": AOTI_FORMAT,
        "mlff_format_version": str(AOTI_VERSION),
        "mlff_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "elements": " ".join(model.elements),
        "cutoff": repr(float(model.cutoff)),
        "dtype": str(model.dtype).removeprefix("torch."),
        "method": method,
        "cpu_threads": str(threads),
        "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
        "inputs": ",".join(PACKAGE_INPUTS),
        "outputs": ",".join(PACKAGE_OUTPUTS),
    }


def compiled_files(step: ForceStep, device: str, configs: dict) -> list:
    """One step exported (sizes dynamic) and compiled by AOTInductor: its files for a package."""
    program = torch.export.export(step, example_inputs(step.model, device), dynamic_shapes=dynamic_shapes())
    args, kwargs = program.example_inputs
    return torch._inductor.aot_compile(program.module(), args, kwargs, options=dict(configs))


def compile_package(
    model_bytes: bytes, output: str | Path, method: str, dtype: str, device: str, threads: int = 1
) -> Path:
    """Export and compile the force step of a model file's bytes into ``output`` (a .pt2 file
    holding both models of ``PACKAGE_MODELS``), written atomically: a minute or so (inductor writes
    and compiles C++ for a CPU, Triton kernels for a GPU).

    threads: the CPU threads the compiled C++ runs on, fixed in the package. With one, sums over
    edges are plain additions; with more, inductor makes every one an atomic add (a compare-and-swap
    loop per value), which costs far more than the sum on one core. One is the default: CPU nodes
    scale by MPI ranks."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}: use one of {tuple(DTYPES)}")
    output = Path(output)
    if output.suffix != PACKAGE_SUFFIX:
        raise ValueError(f"{output}: an AOTInductor package must be named *{PACKAGE_SUFFIX}")
    if threads < 1:
        raise ValueError(f"threads={threads}: a package runs on one CPU thread or more")
    if method != "analytic":
        # torch.export stops on torch.autograd.grad inside the step ("a fake tensor in the exported
        # program constant's list", torch 2.13)
        raise ValueError(
            f"the compiled force step is analytic only (torch cannot export method {method!r} ahead of time): "
            "use --method analytic, or run the autograd reference through the .mliap export"
        )
    model = load_model(io.BytesIO(model_bytes), DTYPES[dtype]).to(device)
    configs = {
        "aot_inductor.metadata": package_metadata(model, method, model_bytes, threads),
        "aot_inductor.package": True,
        "cpp.threads": threads,
        # the GPU kernels inside the compiled library: as separate files, the plugin's loader did not
        # find them ("CUDA driver error: file not found" in every CUDA package's first step, H200,
        # 2026-12-05, results/h200_2026-12-05/; embedded, they run: results/h200_2026-12-05d/)
        "aot_inductor.embed_kernel_binary": device.startswith("cuda"),
    }
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's own pytree deprecations, not ours
        files = {
            name: compiled_files(ForceStep(model, method, exchange).to(device).eval(), device, configs)
            for exchange, name in PACKAGE_MODELS.items()
        }
    with atomic_path(output) as temporary:
        package_aoti(str(temporary), files)
    return output
