"""Settings of every test: the model runs uncompiled (MLFF_COMPILE=0), because torch.compile takes
15-60 s per process and most tests start LAMMPS processes. The compiled paths that users get are
checked against the eager model in tests/model/test_replay.py, and in LAMMPS by the tests that
turn compilation back on (tests/lammps/test_export_md.py, tests/plugin/test_gpu.py)."""

import os

os.environ.setdefault("MLFF_COMPILE", "0")


import pytest  # noqa: E402 (the setting above comes first: it must precede any import of the package)


@pytest.fixture
def exchange_operator_calls(monkeypatch) -> list[bool]:
    """The calls (their `reverse`) that compiled code makes of `mlff_plugin::halo_exchange`'s Python
    implementation (lammps/aoti.py), from here to the test's end."""
    from mlff_distiller.model.halo import GatherHalo

    calls: list[bool] = []
    primitive = GatherHalo.primitive

    def counted(self, rows, reverse):
        calls.append(reverse)
        return primitive(self, rows, reverse)

    monkeypatch.setattr(GatherHalo, "primitive", counted)
    return calls
