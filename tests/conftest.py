"""Settings of every test: the model runs uncompiled (MLFF_COMPILE=0), because torch.compile takes
15-60 s per process and most tests start LAMMPS processes. The compiled paths that users get are
checked against the eager model in tests/model/test_replay.py, and in LAMMPS by the tests that
turn compilation back on (tests/lammps/test_export_md.py, tests/plugin/test_gpu.py)."""

import os

os.environ.setdefault("MLFF_COMPILE", "0")
