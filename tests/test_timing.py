"""The opt-in step timer (mlff_distiller.timing): off, a section records nothing and never
synchronises; on, sections add their seconds and calls, nested ones inside their outer one;
MLFF_TIMING switches it on for a whole process and writes the totals at exit; and a LAMMPS step
through the coupling records its parts with it."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from mlff_distiller import timing
from mlff_distiller.lammps.unified import StudentUnified, read_export
from mlff_distiller.lammps.export import export
from mlff_distiller.model.io import save_model
from mlff_distiller.model.painn import PaiNN, PaiNNConfig

STEP_PARTS = {"prepare_step", "to_device", "model", "check_model_output", "write_back"}


@pytest.fixture(autouse=True)
def timing_off():
    """Each test starts and ends with timing off, whatever the environment."""
    timing.disable()
    yield
    timing.disable()


@pytest.fixture
def no_synchronize(monkeypatch):
    def refuse():
        raise AssertionError("synchronised while it should not")

    monkeypatch.setattr(torch.cuda, "synchronize", refuse)


def test_off_records_nothing_and_takes_the_empty_path(no_synchronize):
    assert not timing.enabled()
    first, second = timing.section("model"), timing.section("write_back")
    assert first is second  # one shared empty context: no timer object, no clock, no sync
    with first:
        pass
    assert timing.totals() == {}
    timing.reset()  # harmless while off
    assert timing.totals() == {}


def test_on_sections_add_up(no_synchronize):
    timer = timing.enable(sync=False)
    start = time.perf_counter()
    for _ in range(2):
        with timing.section("outer"):
            with timing.section("inner"):
                time.sleep(0.01)
            time.sleep(0.005)
    with timing.section("other"):
        time.sleep(0.002)
    wall = time.perf_counter() - start
    totals = timing.totals()
    assert {name: t["calls"] for name, t in totals.items()} == {"inner": 2, "outer": 2, "other": 1}
    seconds = {name: t["seconds"] for name, t in totals.items()}
    assert seconds["inner"] >= 0.02 and seconds["outer"] >= seconds["inner"] + 0.01
    # sequential sections sum to at most the wall time (nested ones are inside their outer one)
    assert seconds["outer"] + seconds["other"] <= wall
    assert timer.synchronized is False
    timing.reset()
    assert timing.totals() == {} and timing.enabled()


def test_a_section_that_raises_is_still_timed():
    timing.enable(sync=False)
    with pytest.raises(ValueError), timing.section("failing"):
        raise ValueError("no")
    assert timing.totals()["failing"]["calls"] == 1


def test_synchronises_around_each_section_when_asked(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: calls.append("sync"))
    timer = timing.enable(sync=True)
    with timing.section("model"):
        calls.append("work")
    assert calls == ["sync", "work", "sync"] and timer.synchronized


def test_by_default_synchronises_only_once_cuda_is_in_use(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: calls.append("sync"))
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    timing.enable()
    with timing.section("model"):
        pass
    assert calls == []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    with timing.section("model"):
        pass
    assert calls == ["sync", "sync"]


def test_the_environment_switches_it_on_and_writes_at_exit(tmp_path):
    script = "from mlff_distiller import timing\nfor _ in range(3):\n    with timing.section('model'):\n        pass\n"
    env = {**os.environ, timing.ENVIRONMENT: str(tmp_path / "timing_{rank}.json"), "OMPI_COMM_WORLD_RANK": "1"}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
    record = json.loads((tmp_path / "timing_1.json").read_text())
    assert record["sections"]["model"]["calls"] == 3 and record["cuda_synchronized"] is False


@pytest.fixture(scope="module")
def unified(tmp_path_factory):
    work = tmp_path_factory.mktemp("timing")
    torch.manual_seed(0)
    save_model(PaiNN(PaiNNConfig(elements=["H", "O"], n_features=8, n_layers=1, cutoff=4.0)), work / "m.pt")
    return read_export(export(work / "m.pt", work / "m.mliap"))


class StockData:
    """A stand-in for stock ML-IAP's data object: two atoms, one pair each way."""

    def __init__(self):
        self.nlistatoms = self.natomneigh = self.ntotal = 2
        self.npairs = 2
        self.elems = np.array([0, 1], dtype=np.int32)
        self.iatoms = np.array([0, 1], dtype=np.int32)
        self.pair_i = np.array([0, 1], dtype=np.int32)
        self.pair_j = np.array([1, 0], dtype=np.int32)
        self.rij = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
        self.fij = None

    def update_pair_forces(self, fij):
        self.fij = np.array(fij)


def test_a_coupling_step_records_its_parts(unified: StudentUnified):
    data = StockData()
    unified._step(data, lambda index: index + 1, halo=False)  # off: nothing recorded
    assert timing.totals() == {} and data.fij is not None
    timing.enable(sync=False)
    for _ in range(2):
        unified._step(data, lambda index: index + 1, halo=False)
    totals = timing.totals()
    assert set(totals) == STEP_PARTS
    assert all(t["calls"] == 2 for t in totals.values())
