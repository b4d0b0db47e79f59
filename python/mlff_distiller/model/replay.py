"""Launch-free model steps: the model call replayed as a CUDA graph over padded shape buckets.

A force call of the student is a few hundred small kernels; on a GPU, launching them costs more
than running them up to thousands of atoms. A CUDA graph records the launches once and replays
them with one. A graph has fixed shapes, so ``GraphReplay`` pads every call up to a bucket:

* atoms up to the next size of a geometric series (``bucket_size``), keeping at least one padding
  atom; padding atoms are of element 0 and their energies have weight 0;
* edges likewise; padding edges connect padding atoms, spread over all of them, and are
  ``PADDING_DISTANCE`` cutoffs long, where the cutoff function and its derivative are exactly 0:
  they add exactly nothing to any atom or edge (``tests/model/test_replay.py``);
* which atoms count goes in as weights (``PaiNN.energies_and_weighted_edge_gradients``), so the
  number of counted atoms is data, not shape.

On a GPU the captured call is the model compiled by ``torch.compile`` (inductor): it fuses the
element-wise work between gathers and scatters into few kernels, which is what decides large
systems (H100, float32, 8,232 waters: 26 ms per replay unfused, 7.3 ms fused; benchmarks/).
It is compiled for dynamic shapes from the first call (25-60 s on that machine, at LAMMPS's
set-up), so that moving to another bucket later in a run costs a graph capture, not a recompile
(a recompile inside a 200-step LAMMPS run added 75 ms per step on average). ``MLFF_COMPILE=0`` in
the environment captures the model uncompiled instead: a start in seconds, for short runs and tests.

Each bucket is captured on its first call and replayed afterwards (each capture prints one line,
so a pause in a run can be told apart). A system that outgrows its bucket moves to the next one
(captured then, once); one that shrinks stays in a kept bucket while that is at most
``SHRINK_STEPS`` sizes too large, so sizes hovering around a boundary do not capture again and
again. At most ``max_buckets`` buckets are kept, the least recently used dropped first, so memory
stays bounded; a capture that runs out of GPU memory drops the other buckets and tries once more
before it reports the sizes that did not fit.

Without CUDA (``graphs=False``, the default on the CPU) the padded buffers run the compiled model
directly, which is how LAMMPS runs on a CPU (``step_runner``), or the eager one (``fuse=False``),
which is how the CPU tests check the padding: uncompiled, calling the model unpadded is faster.

Halo mode: a ``GatherHalo`` (one process holds every owner) is padded like the rest (padding
ghosts are padding atoms copied onto themselves) and captured with the step. Any other ``Halo``
exchanges through host callbacks between layers (MPI ranks): the compiled model calls them through
the opaque operator of ``halo.py`` and runs without a CUDA graph, whose replay cannot call back
to the host; uncompiled, that call runs eagerly, unpadded.
"""

from __future__ import annotations

import math
import os
import time
from collections import OrderedDict
from functools import partial

import torch
from torch import Tensor

from .halo import STEP_HALO, GatherHalo, Halo, exchanging
from .painn import METHODS, PaiNN

GROWTH = 1.125  # each bucket this much larger than the one before: at most 12.5% padding
# Above 16: inductor turns matrix products of at most 16 rows into other code, so a bucket of 16
# would recompile on the way to the next one.
SMALLEST_ATOMS = 32
# Small molecules pad little: aspirin's 306 pairs take a bucket of 320 (512 before), and in the
# compiled path on a CPU the padding pairs cost what real ones do.
SMALLEST_EDGES = 64
PADDING_DISTANCE = 2.0  # length of a padding edge, in cutoffs
CAPTURE_MESSAGE = "mlff-distiller: captured a CUDA graph"  # printed once per capture (benchmarks count it)
COMPILE_MESSAGE = "mlff-distiller: compiling the model"  # printed before the first compiled call
SHRINK_STEPS = 2  # a kept bucket serves sizes up to this many sizes of the series below it


def bucket_size(n: int, smallest: int, growth: float = GROWTH) -> int:
    """The smallest size of the series smallest, ~smallest*growth, ... (multiples of 16) >= n."""
    size = smallest
    while size < n:
        size = next_size(size, growth)
    return size


def next_size(size: int, growth: float = GROWTH) -> int:
    """The size after ``size`` in the series of ``bucket_size``: a multiple of 16, because Triton
    specialises its kernels on whether sizes divide by 16, and a bucket that changed that would
    recompile every kernel (about 15 s on an H100 machine) in the middle of a run."""
    return 16 * math.ceil(size * growth / 16)


def roomy(need: int, size: int) -> bool:
    """Whether a bucket dimension of ``size`` holds ``need`` (itself a size of the series) with
    at most ``SHRINK_STEPS`` sizes of the series to spare."""
    most = need
    for _ in range(SHRINK_STEPS):
        most = next_size(most)
    return need <= size <= most


def compile_requested() -> bool:
    """Whether the environment leaves torch.compile on (MLFF_COMPILE=0 turns it off)."""
    return os.environ.get("MLFF_COMPILE", "1") != "0"


def step_runner(model: PaiNN, method: str):
    """The model's per-step call in LAMMPS, ``energies_and_edge_gradients``'s signature: the one
    place where the devices differ. On a GPU, graph replays (compiled unless MLFF_COMPILE=0). On a
    CPU, the compiled model over padded buckets, whose fused C++ loops replace hundreds of small
    operations (aspirin, one core: 6.5 -> 1.8 ms per call), called from C++ rather than from
    inductor's Python wrapper (which took 18% of aspirin's compiled call), or with MLFF_COMPILE=0
    the eager model."""
    if model.device.type == "cuda":
        return GraphReplay(model, method)
    if compile_requested():
        return GraphReplay(model, method, graphs=False, fuse=True)
    return partial(model.energies_and_edge_gradients, method=method)


def halo_kind(halo: Halo | None) -> str | None:
    """None, "gather" (device operations: padded and captured with the step) or "host" (host
    callbacks between layers: through ``STEP_HALO``, never captured)."""
    if halo is None:
        return None
    return "gather" if isinstance(halo, GatherHalo) else "host"


def owned_need(need: tuple, key: tuple) -> tuple:
    """``need`` as a bucket of key's atoms must hold it: its owned rows stop one short of them."""
    return need[0], need[1], min(need[2], key[0] - 1)


class Bucket:
    """Fixed-size input buffers for up to ``n_atoms - 1`` atoms and ``n_edges`` edges (and, with
    a gather halo, up to ``n_atoms - 1`` ghosts), the model call on them, and on a GPU its CUDA
    graph (not with a host halo)."""

    def __init__(
        self, call, model: PaiNN, method: str, n_atoms: int, n_edges: int, n_owned: int = 0, halo: str | None = None
    ):
        index = dict(dtype=torch.long, device=model.device)
        self.call, self.method = call, method
        self.species = torch.zeros(n_atoms, **index)
        self.edge_i, self.edge_j = torch.zeros(n_edges, **index), torch.zeros(n_edges, **index)
        self.r_ij = torch.zeros(n_edges, 3, dtype=model.dtype, device=model.device)
        self.weights = torch.zeros(n_atoms, dtype=model.dtype, device=model.device)
        self.halo = {
            None: None,
            "host": STEP_HALO,
            "gather": GatherHalo(torch.zeros(n_atoms, **index), torch.zeros(n_atoms, **index)),
        }[halo]
        self.n_owned = n_owned if halo else None  # with a halo, the rows the update blocks run on
        self.slots = torch.arange(max(n_atoms, n_edges), **index)
        self.far = torch.tensor([PADDING_DISTANCE * model.cutoff, 0.0, 0.0], dtype=model.dtype, device=model.device)
        self.loaded = None  # the sizes whose padding is now in the buffers
        self.graph = None
        self.outputs = None

    @property
    def replayable(self) -> bool:
        """Whether a CUDA graph can hold the call: not with host exchanges between layers."""
        return self.halo is not STEP_HALO

    @property
    def shape(self) -> tuple[int, int]:
        return self.species.shape[0], self.edge_i.shape[0]

    def load(
        self, species: Tensor, edge_i: Tensor, edge_j: Tensor, r_ij: Tensor, n_counted: int, halo: GatherHalo | None
    ) -> None:
        """Copy one call's inputs in; rewrite the padding only when the sizes changed."""
        gather = isinstance(halo, GatherHalo)
        n, e, g = species.shape[0], edge_i.shape[0], halo.ghosts.shape[0] if gather else 0
        self.species[:n].copy_(species)
        self.edge_i[:e].copy_(edge_i)
        self.edge_j[:e].copy_(edge_j)
        self.r_ij[:e].copy_(r_ij)
        if gather:
            self.halo.ghosts[:g].copy_(halo.ghosts)
            self.halo.owners[:g].copy_(halo.owners)
        if self.loaded != (n, e, g, n_counted):
            self._pad(n, e, g, n_counted)

    def _pad(self, n: int, e: int, g: int, n_counted: int) -> None:
        self.species[n:] = 0
        self._padding_atoms(n, self.edge_i[e:])
        self.edge_j[e:] = self.edge_i[e:]
        self.r_ij[e:] = self.far
        if isinstance(self.halo, GatherHalo):
            self._padding_atoms(n, self.halo.ghosts[g:])
            self.halo.owners[g:] = self.halo.ghosts[g:]
        self.weights.zero_()
        self.weights[:n_counted] = 1.0
        self.loaded = (n, e, g, n_counted)

    def _padding_atoms(self, n: int, out: Tensor) -> None:
        """out[k] = padding atom n + k % (number of padding atoms): padding spread over all of
        them, so no atom collects every padding edge's atomic adds."""
        torch.remainder(self.slots[: out.shape[0]], self.shape[0] - n, out=out)
        out += n

    def compute(self) -> tuple[Tensor, Tensor]:
        """The model on the whole buffers: energies [n_atoms], dE/dr_ij [n_edges, 3]."""
        return self.call(
            self.species, self.edge_i, self.edge_j, self.r_ij, self.weights, self.method, self.halo, self.n_owned
        )

    def capture(self) -> None:
        """Record ``compute`` as a CUDA graph, after one eager warm-up on a side stream (library
        handles, workspaces and compiled kernels are made there, outside the capture)."""
        side = torch.cuda.Stream(self.r_ij.device)
        side.wait_stream(torch.cuda.current_stream(self.r_ij.device))
        with torch.cuda.stream(side):
            self.compute()
        torch.cuda.current_stream(self.r_ij.device).wait_stream(side)
        torch.cuda.empty_cache()  # give the warm-up's memory to the graph's own pool
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.outputs = self.compute()
        self.graph = graph

    def replay(self) -> tuple[Tensor, Tensor]:
        """Replay the graph; its outputs live in the graph's buffers until the next replay."""
        self.graph.replay()
        return self.outputs


class GraphReplay:
    """The model's per-step call, ``energies_and_edge_gradients``, launch-free.

    runner = GraphReplay(model, "analytic")
    energies, grad = runner(species, edge_i, edge_j, r_ij, n_counted, halo)

    Inputs as for ``PaiNN.energies_and_edge_gradients``, on any device (host tensors are copied
    straight into the buffers); validate them with ``model.validate_inputs`` where they arrive:
    nothing here reads their values. Returns energies [n_counted] and dE/dr_ij [E,3] on the
    model's device, as fresh tensors. halo: None, a ``GatherHalo`` (padded and captured too), or
    any other ``Halo`` (host exchanges: compiled and padded but never captured, or without
    ``fuse`` the eager model, unpadded).
    graphs: replay CUDA graphs (default: when the model is on a CUDA device).
    fuse: capture the model compiled by ``torch.compile`` (default: with graphs, unless the
    environment sets MLFF_COMPILE=0); on a CPU with inductor's C++ wrapper.
    """

    def __init__(
        self,
        model: PaiNN,
        method: str = "analytic",
        graphs: bool | None = None,
        fuse: bool | None = None,
        max_buckets: int = 3,
    ):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}: use one of {METHODS}")
        device = model.device
        self.model, self.method = model, method
        self.graphs = device.type == "cuda" if graphs is None else graphs
        if self.graphs and device.type != "cuda":
            raise ValueError(f"CUDA graphs need a model on a CUDA device, not {device}")
        self.fuse = (self.graphs and compile_requested()) if fuse is None else fuse
        self.call = model.energies_and_weighted_edge_gradients
        if self.fuse:
            # on a CPU every call goes through inductor's wrapper, which costs less in C++ than in Python
            self.call = torch.compile(self.call, dynamic=True, options={"cpp_wrapper": device.type == "cpu"})
        self.compile_announced = False  # COMPILE_MESSAGE printed (before the first compiled call)
        self.max_buckets = max_buckets
        self.buckets: OrderedDict[tuple[int, int, int, str | None], Bucket] = OrderedDict()

    def __call__(
        self, species, edge_i, edge_j, r_ij, n_counted: int | None = None, halo: Halo | None = None
    ) -> tuple[Tensor, Tensor]:
        kind = halo_kind(halo)
        if kind != "host":
            return self._padded_call(species, edge_i, edge_j, r_ij, n_counted, halo, kind)
        # a host exchange's backward is Python (autograd method): run it on this thread, not on
        # autograd's device thread, which would free Python objects after LAMMPS has finalised
        # Python and abort the process at exit
        with torch.autograd.set_multithreading_enabled(False):
            if not self.fuse:
                with torch.no_grad():
                    return self.model.energies_and_edge_gradients(
                        species, edge_i, edge_j, r_ij, n_counted, self.method, halo
                    )
            with exchanging(halo, species.shape[0]):
                return self._padded_call(species, edge_i, edge_j, r_ij, n_counted, STEP_HALO, kind)

    def _padded_call(self, species, edge_i, edge_j, r_ij, n_counted, halo, kind) -> tuple[Tensor, Tensor]:
        n_atoms, n_edges = species.shape[0], edge_i.shape[0]
        n_counted = n_atoms if n_counted is None else n_counted
        self.model.check_layout(species, edge_i, edge_j, r_ij, n_counted)
        bucket = self.bucket_for(n_atoms, n_edges, kind, n_counted)
        bucket.load(species, edge_i, edge_j, r_ij, n_counted, halo)
        try:
            return self._run(bucket, n_counted, n_edges)
        except torch._dynamo.exc.BackendCompilerFailed as exc:
            raise RuntimeError(
                f"torch.compile failed on this machine ({type(exc.inner_exception).__name__}: "
                f"{str(exc.inner_exception)[:300]}): set MLFF_COMPILE=0 in the environment to run "
                "the model uncompiled"
            ) from exc

    def _run(self, bucket: Bucket, n_counted: int, n_edges: int) -> tuple[Tensor, Tensor]:
        if self.fuse and not self.compile_announced:
            print(f"{COMPILE_MESSAGE} (once per process, 15-60 s; MLFF_COMPILE=0 skips it)", flush=True)
            self.compile_announced = True
        with torch.no_grad():
            if not (self.graphs and bucket.replayable):
                energies, grad = bucket.compute()
                return energies[:n_counted], grad[:n_edges]
            if bucket.graph is None:
                self.capture(bucket)
            energies, grad = bucket.replay()
        return energies[:n_counted].clone(), grad[:n_edges].clone()

    def bucket_for(self, n_atoms: int, n_edges: int, halo: str | None = None, n_counted: int = 0) -> Bucket:
        """The bucket for these sizes: the smallest kept one that holds them with at most
        ``SHRINK_STEPS`` sizes of the series to spare, else a new one of the next sizes of the
        series, or of the last bucket's size in a dimension where that still holds them (the
        least recently used bucket dropped if ``max_buckets`` are kept). With a halo the counted
        atoms are a third dimension (the rows of the update blocks), below the bucket's atoms.

        Keeping a roomier bucket while a system shrinks a little is what makes sizes that hover
        around a bucket boundary (pairs come and go at every neighbour-list build) replay graphs
        already captured instead of capturing new ones."""
        need = (
            bucket_size(n_atoms + 1, SMALLEST_ATOMS),
            bucket_size(n_edges, SMALLEST_EDGES),
            bucket_size(n_counted, SMALLEST_ATOMS) if halo else 0,
        )
        kept = [key for key in self.buckets if key[3] == halo and all(map(roomy, owned_need(need, key), key[:3]))]
        if kept:
            key = min(kept, key=lambda k: (k[1], k[0], k[2]))
        else:  # outgrown in one dimension: keep the other's room of the bucket in use
            last = next(reversed(self.buckets), need)
            n, e, owned = (max(n, size) if roomy(n, size) else n for n, size in zip(need, last[:3]))
            key = (n, e, min(owned, n - 1) if halo else 0, halo)
        if key in self.buckets:
            self.buckets.move_to_end(key)
        else:
            while len(self.buckets) >= self.max_buckets:
                self.buckets.popitem(last=False)
            self.buckets[key] = Bucket(self.call, self.model, self.method, *key)
        return self.buckets[key]

    def capture(self, bucket: Bucket) -> None:
        """Capture a bucket; out of memory, drop every other bucket and try once more."""
        start = time.perf_counter()
        try:
            bucket.capture()
        except torch.cuda.OutOfMemoryError:
            self._capture_alone(bucket)
        print(
            f"{CAPTURE_MESSAGE} for up to {bucket.shape[0] - 1} atoms and "
            f"{bucket.shape[1]} pairs in {time.perf_counter() - start:.2f} s",
            flush=True,
        )

    def _capture_alone(self, bucket: Bucket) -> None:
        bucket.graph = bucket.outputs = None
        for key in [k for k, other in self.buckets.items() if other is not bucket]:
            del self.buckets[key]
        torch.cuda.empty_cache()
        try:
            bucket.capture()
        except torch.cuda.OutOfMemoryError as exc:
            n_atoms, n_edges = bucket.shape
            raise MemoryError(
                f"the model does not fit on {bucket.r_ij.device} for up to {n_atoms - 1} atoms and {n_edges} "
                f"edges ({bucket.r_ij.dtype}): split the system over more ranks or GPUs"
                f"{', or export in float32' if bucket.r_ij.dtype == torch.float64 else ''}"
            ) from exc
