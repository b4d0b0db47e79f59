"""Fixtures of the LAMMPS tests (helpers in lammps_runner.py, re-exported for the plugin tests)."""

from pathlib import Path

import pytest

from lammps_runner import HERE, LMP, MPIRUN, ROOT, read_dump, read_values, run_lammps  # noqa: F401


def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in Path(item.fspath).parents:
            item.add_marker(pytest.mark.lammps)


@pytest.fixture(scope="session")
def lmp():
    if not LMP.exists():
        pytest.fail(f"{LMP} is missing: run `bash scripts/setup.sh` (or `make test`) first")
    return LMP
