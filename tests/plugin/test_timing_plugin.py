"""MLFF_TIMING in a real `mpirun lmp` run through the plugin: each rank writes its step's parts
(the halo exchanges through LAMMPS inside the model call) when LAMMPS exits, and the run's
results are those of a run without timing."""

import json

import numpy as np
import pytest

from mlff_distiller.timing import ENVIRONMENT

from plugin_support import PLUGIN, WATER, lammps_input, make_export, ortho_water, pair_lines, run_single_point

pytestmark = pytest.mark.lammps


def test_each_rank_writes_its_parts_at_exit(tmp_path):
    if not PLUGIN.exists():
        pytest.fail(f"{PLUGIN} is missing: run `bash scripts/setup.sh` first")
    model_file, _ = make_export(tmp_path, 2)
    script = lammps_input(pair_lines(model_file, WATER), run="run 2")
    atoms = ortho_water()
    plain = run_single_point(tmp_path / "plain", atoms, script, nprocs=2)
    timed = run_single_point(
        tmp_path / "timed", atoms, script, nprocs=2, env={ENVIRONMENT: str(tmp_path / "timing_{rank}.json")}
    )
    assert np.array_equal(plain["forces"], timed["forces"]) and plain["energy"] == timed["energy"]
    for rank in (0, 1):
        sections = json.loads((tmp_path / f"timing_{rank}.json").read_text())["sections"]
        assert set(sections) == {
            "prepare_step",
            "to_device",
            "halo",
            "model",
            "exchange",
            "check_model_output",
            "write_back",
        }
        assert sections["model"]["calls"] == 3  # the set-up's forces and two steps
        assert sections["exchange"]["calls"] > 0
        assert sections["exchange"]["seconds"] < sections["model"]["seconds"]
