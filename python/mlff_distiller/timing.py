"""An opt-in timer of the parts of a step: cumulative seconds and calls per named section.

The LAMMPS coupling marks the parts of each step with ``section``::

    prepare_step        LAMMPS's arrays -> the model's atoms and edges     (lammps/unified.py)
    to_device           the model's inputs onto its device
    halo                the plugin's halo of the step                      (lammps/halo_data.py)
    model               the model call; on several ranks it holds ...
    exchange            ... each halo exchange through LAMMPS, host copies included
    check_model_output  the checks of the model's outputs
    write_back          energies and pair forces into LAMMPS's arrays

Off (the default) a section is an empty ``with``: one global lookup, nothing recorded, no
synchronisation. On, a section on CUDA synchronises the device as it starts (work already queued
belongs to the part before) and as it ends (its own kernels belong to it), which slows the step a
little: the price of a breakdown. Sections nest (``exchange`` runs inside ``model``) and each adds
its own time, so a sum over nested sections counts the inner one twice.

Two ways to switch it on:

* ``MLFF_TIMING=FILE.json`` in the environment of any run (`lmp`, `mpirun ... lmp`, Python):
  the process writes its totals to FILE when it exits (``write``); ``{rank}`` in FILE becomes the
  MPI rank, so that ranks do not write over each other;
* ``enable()`` in Python, then ``totals()`` and ``reset()`` (benchmarks/coupling.py).

Standard library only (torch is imported when a section first asks whether to synchronise).
"""

from __future__ import annotations

import atexit
import json
import os
import time
from contextlib import nullcontext
from pathlib import Path

ENVIRONMENT = "MLFF_TIMING"


class StepTimer:
    """Seconds and calls per section name. ``sync``: synchronise CUDA around each section (True),
    never (False), or when CUDA is initialised in this process (None)."""

    def __init__(self, sync: bool | None = None):
        self.sync = sync
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.synchronized = False  # whether a section has synchronised CUDA

    def section(self, name: str) -> _Section:
        return _Section(self, name)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        self.calls[name] = self.calls.get(name, 0) + 1

    def synchronize(self) -> None:
        if self.sync is False:
            return
        import torch

        if self.sync or torch.cuda.is_initialized():
            torch.cuda.synchronize()
            self.synchronized = True

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()

    def totals(self) -> dict[str, dict[str, float]]:
        """{section: {"seconds": cumulative seconds, "calls": how many times it ran}}."""
        return {name: {"seconds": self.seconds[name], "calls": self.calls[name]} for name in self.seconds}


class _Section:
    """One timed run of a section: a context manager that adds its time to the timer on exit
    (when the block raises too)."""

    __slots__ = ("timer", "name", "start")

    def __init__(self, timer: StepTimer, name: str):
        self.timer, self.name = timer, name

    def __enter__(self):
        self.timer.synchronize()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.timer.synchronize()
        self.timer.add(self.name, time.perf_counter() - self.start)
        return False


timer: StepTimer | None = None  # the process's timer while timing is on
_OFF = nullcontext()  # what every section is while timing is off


def section(name: str):
    """``with section("model"):`` times the block while timing is on; otherwise does nothing."""
    return _OFF if timer is None else timer.section(name)


def enable(sync: bool | None = None) -> StepTimer:
    """Switch timing on (a fresh timer; see ``StepTimer`` for ``sync``) and return the timer."""
    global timer
    timer = StepTimer(sync)
    return timer


def disable() -> None:
    global timer
    timer = None


def enabled() -> bool:
    return timer is not None


def reset() -> None:
    """Forget what was timed so far (a warm-up), keep timing on."""
    if timer is not None:
        timer.reset()


def totals() -> dict[str, dict[str, float]]:
    """What was timed since timing went on or was reset (``StepTimer.totals``); {} while off."""
    return {} if timer is None else timer.totals()


def output_path(path: str | Path) -> Path:
    """``path`` with ``{rank}`` replaced by this process's MPI rank (0 outside MPI)."""
    from .lammps.device import world_rank

    return Path(str(path).replace("{rank}", str(world_rank())))


def write(path: str | Path) -> Path:
    """The totals as JSON into ``path`` (``output_path``), written whole or not at all."""
    from .files import atomic_write_text

    record = {"sections": totals(), "cuda_synchronized": timer is not None and timer.synchronized}
    return atomic_write_text(output_path(path), json.dumps(record, indent=1) + "\n")


def _start_from_environment() -> None:
    path = os.environ.get(ENVIRONMENT)
    if path:
        enable()
        atexit.register(write, path)


_start_from_environment()
