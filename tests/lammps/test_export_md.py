"""`mlff-distiller export`, `lammps-input` and `md` as a user runs them (real LAMMPS underneath)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mlff_distiller.lammps.device import DeviceError
from mlff_distiller.lammps.export import export, read_export, write_export
from mlff_distiller.lammps.unified import StudentUnified
from mlff_distiller.model.io import save_model, shipped_committee
from mlff_distiller.model.replay import COMPILE_MESSAGE
from mlff_distiller.model.painn import PaiNN, PaiNNConfig

ROOT = Path(__file__).resolve().parents[2]
CLI = [str(Path(sys.executable).parent / "mlff-distiller")]


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    return save_model(PaiNN(PaiNNConfig(elements=["H", "C", "O"], n_features=16)), tmp_path / "m.pt")


def test_export_refuses_pt_names_and_reads_back(tmp_path, model_file):
    with pytest.raises(ValueError, match=r"\.mliap"):
        export(model_file, tmp_path / "x.pt")
    out = export(model_file, tmp_path / "x.mliap", method="autograd", dtype="float32")
    unified = read_export(out)
    assert unified.method == "autograd" and unified.dtype_name == "float32"
    assert unified.element_types == ["H", "C", "O"] and unified.rcutfac == 2.5


def test_export_from_another_format_version_fails_clearly(tmp_path, model_file):
    unified = read_export(export(model_file, tmp_path / "x.mliap"))
    state = unified.__getstate__()
    state["format_version"] = 99
    broken = StudentUnified.__new__(StudentUnified)
    with pytest.raises(ValueError, match="re-export it"):
        broken.__setstate__(state)


def test_export_writes_atomically(tmp_path, model_file, monkeypatch):
    """An export that fails half-way (here: the disk fills after 100 bytes) leaves the previous
    file whole and no temporary file behind; LAMMPS never reads half a file."""
    import mlff_distiller.lammps.export as export_module

    out = export(model_file, tmp_path / "x.mliap")
    before = out.read_bytes()

    def dump_half_and_fail(obj, fh, protocol=None):
        fh.write(b"\x80" * 100)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_module.pickle, "dump", dump_half_and_fail)
    with pytest.raises(OSError):
        export(model_file, out, method="autograd")
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "x.mliap"]


def test_lammps_input_command_prints_every_mode(tmp_path, model_file):
    out = export(model_file, tmp_path / "x.mliap")
    text = subprocess.run(
        CLI + ["lammps-input", str(out), "--elements", "O", "H"], capture_output=True, text=True, check=True
    ).stdout
    assert f"pair_style mliap/halo {out}" in text and f"pair_style mliap unified {out} 0" in text
    assert "pair_coeff * * O H" in text and "newton on" in text and "units metal" in text
    assert "special_bonds lj/coul 1.0 1.0 1.0" in text and "comm_modify" not in text
    bad = subprocess.run(CLI + ["lammps-input", str(out), "--elements", "Si"], capture_output=True, text=True)
    assert bad.returncode != 0 and "Si" in bad.stderr


@pytest.mark.parametrize(
    "command, content, expect",
    [
        ("lammps-input", None, "cannot read"),
        ("lammps-input", b"hello", "not a readable mlff-distiller LAMMPS export"),
        ("lammps-input", "model", "is a model file (torch), not a LAMMPS export: run `mlff-distiller export"),
        ("export", b"hello", "not a readable mlff-distiller model file"),
        ("md", None, "no model file"),
        ("md", b"hello", "not a readable mlff-distiller model file"),
    ],
)
def test_unreadable_files_give_one_line_errors(tmp_path, model_file, command, content, expect):
    path = model_file if content == "model" else tmp_path / "x.bin"
    if isinstance(content, bytes):
        path.write_bytes(content)
    args = {
        "lammps-input": [str(path)],
        "export": [str(path), "-o", str(tmp_path / "y.mliap")],
        "md": [str(ROOT / "inputs" / "aspirin"), "--model", str(path), "--workdir", str(tmp_path / "run")],
    }
    proc = subprocess.run(CLI + [command] + args[command], capture_output=True, text=True)
    assert proc.returncode == 2 and expect in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("method", ["analytic", "autograd"])
def test_md_command_reports_speed_and_drift(tmp_path, model_file, method):
    """md on a user's own input folder (a copy of inputs/aspirin) writes into --workdir only."""
    inputs = tmp_path / "my_inputs" / "aspirin"
    shutil.copytree(ROOT / "inputs" / "aspirin", inputs)
    before = sorted(p.name for p in inputs.iterdir())
    proc = subprocess.run(
        CLI
        + [
            "md",
            str(inputs),
            "--model",
            str(model_file),
            "--steps",
            "100",
            "--method",
            method,
            "--workdir",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ms/step" in proc.stdout
    drift = float(re.search(r"energy drift ([-+0-9.e]+) eV/atom over the run", proc.stdout)[1])
    assert abs(drift) < 1e-3, proc.stdout
    assert (tmp_path / "run" / "energy.png").stat().st_size > 1000
    assert sorted(p.name for p in inputs.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt", "my_inputs", "run"]


@pytest.mark.slow
def test_compiled_md_follows_the_eager_md(tmp_path, model_file):
    """The step users get on a CPU (MLFF_COMPILE unset: the compiled model over padded buckets,
    pairs changing as the molecule moves) gives the eager model's trajectory: energies to 1e-8 eV
    over 100 float64 steps."""
    energies = {}
    for compiled in ("0", "1"):
        workdir = tmp_path / f"compile{compiled}"
        proc = subprocess.run(
            CLI
            + [
                "md",
                str(ROOT / "inputs" / "aspirin"),
                "--model",
                str(model_file),
                "--steps",
                "100",
                "--workdir",
                str(workdir),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "MLFF_COMPILE": compiled},
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (COMPILE_MESSAGE in (workdir / "screen.txt").read_text()) == (compiled == "1")  # the path it claims
        energies[compiled] = np.loadtxt(workdir / "energy.txt")[:, 2:]
    assert energies["0"].shape[0] > 5
    assert np.abs(energies["0"] - energies["1"]).max() < 1e-8


@pytest.mark.slow
def test_md_aoti_runs_the_compiled_step_and_follows_the_python_step(tmp_path, model_file):
    """`md --aoti` compiles the step, runs the input's copy through `mliap/aoti` (plugin loaded,
    the pair style replaced) and follows the Python step's trajectory: energies to 1e-8 eV over
    100 float64 steps. An input without a pair style of ${model} is refused before anything runs."""
    energies = {}
    for flags in ([], ["--aoti"]):
        workdir = tmp_path / ("aoti" if flags else "python")
        command = ["md", str(ROOT / "inputs" / "aspirin"), "--model", str(model_file), "--steps", "100"]
        proc = subprocess.run(CLI + command + ["--workdir", str(workdir), *flags], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        energies[bool(flags)] = np.loadtxt(workdir / "energy.txt")[:, 2:]
    script = (tmp_path / "aoti" / "in.nve").read_text()
    assert "plugin load ${plugin}" in script and "pair_style mliap/aoti default.pt2" in script
    assert "mliap/aoti: default.pt2 (analytic float64" in (tmp_path / "aoti" / "screen.txt").read_text()
    assert energies[False].shape[0] > 5
    assert np.abs(energies[False] - energies[True]).max() < 1e-8

    (tmp_path / "own").mkdir()
    (tmp_path / "own" / "in.lj").write_text("units lj\npair_style lj/cut 2.5\nrun 10\n")
    for flags, expect in (
        (["--method", "autograd"], "--aoti runs the analytic step only"),
        ([], "in.lj has no `pair_style mliap unified ${model}`"),
    ):
        command = ["md", str(tmp_path / "own"), "--model", str(model_file), "--aoti", *flags]
        proc = subprocess.run(CLI + command, capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode != 0 and expect in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists()  # refused before anything was written or compiled


no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks what happens without a usable GPU")


@no_gpu
def test_cuda_export_without_a_gpu_fails_at_export(tmp_path, model_file):
    proc = subprocess.run(
        CLI + ["export", str(model_file), "-o", str(tmp_path / "x.mliap"), "--device", "cuda"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "sees no usable CUDA GPU" in proc.stderr, proc.stderr


def test_a_cuda_export_reads_as_plain_data_anywhere(tmp_path, model_file, monkeypatch):
    """Reading an export touches no device: a CUDA export (StudentUnified writes one without a
    GPU) gives its `lammps-input` lines on any machine; its device is looked for by the first
    step (``runtime``), and on a machine without a GPU refused there."""
    out = write_export(StudentUnified(model_file.read_bytes(), device="cuda"), tmp_path / "x.mliap")
    env = {k: v for k, v in os.environ.items() if k != "MLFF_DEVICE"}
    proc = subprocess.run(CLI + ["lammps-input", str(out)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"pair_style mliap/halo {out}" in proc.stdout and "pair_coeff * * H C O" in proc.stdout
    unified = read_export(out)
    assert unified.device_request == "cuda" and unified._runtime is None
    assert unified.element_types == ["H", "C", "O"] and unified.rcutfac == 2.5
    if not torch.cuda.is_available():
        monkeypatch.delenv("MLFF_DEVICE", raising=False)
        with pytest.raises(DeviceError, match="the model asks for device 'cuda'"):
            unified.runtime()


@no_gpu
def test_cuda_export_without_a_gpu_fails_at_the_first_step(tmp_path, model_file):
    """A CUDA export (written here with MLFF_DEVICE=cpu) stops LAMMPS with the problem named, and
    runs with MLFF_DEVICE=cpu."""
    from lammps_runner import run_lammps

    env = {"MLFF_DEVICE": "cpu"}
    subprocess.run(
        CLI + ["export", str(model_file), "-o", str(tmp_path / "x.mliap"), "--device", "cuda"],
        check=True,
        env={**os.environ, **env},
    )
    script = (ROOT / "inputs" / "aspirin" / "in.nve").read_text()
    script = script.replace("${model}", str(tmp_path / "x.mliap")).replace("${steps}", "10")
    (tmp_path / "gpu").mkdir()
    shutil.copy(ROOT / "inputs" / "aspirin" / "aspirin.data", tmp_path / "gpu")
    proc = run_lammps(script, tmp_path / "gpu", check=False, timeout=120)
    assert proc.returncode != 0 and "sees no usable CUDA GPU" in proc.stdout + proc.stderr
    proc = run_lammps(script, tmp_path / "gpu", check=False, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_each_rank_finds_its_local_rank(monkeypatch):
    from mlff_distiller.lammps.device import LOCAL_RANK_VARIABLES, local_rank

    for name in LOCAL_RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert local_rank() == 0
    monkeypatch.setenv("MPI_LOCALRANKID", "3")
    assert local_rank() == 3


@pytest.mark.parametrize("ranks, omp, expect", [(2, None, "1"), (2, "2", "2")])
def test_threads_per_rank(tmp_path, model_file, ranks, omp, expect):
    """Starting an export's runtime under `mpirun -np 2` gives one torch thread per rank unless
    OMP_NUM_THREADS says otherwise."""
    from lammps_runner import MPIRUN

    out = export(model_file, tmp_path / "x.mliap")
    # each rank writes its own file: mpirun may interleave the ranks' standard output
    code = (
        f"import pathlib, torch; from mpi4py import MPI; from mlff_distiller.lammps.export import read_export; "
        f"read_export({str(out)!r}).runtime(); pathlib.Path({str(tmp_path)!r}, f'threads{{MPI.COMM_WORLD.rank}}')"
        ".write_text(str(torch.get_num_threads()))"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if omp:
        env["OMP_NUM_THREADS"] = omp
    proc = subprocess.run(
        [str(MPIRUN), "-np", str(ranks), sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [(tmp_path / f"threads{rank}").read_text() for rank in range(ranks)] == [expect] * ranks


COMMITTEE = [str(path) for path in shipped_committee("default")]


def test_the_default_model_ships_with_a_committee_and_files_have_none(model_file):
    assert [Path(p).name for p in COMMITTEE] == ["member1.pt", "member2.pt", "member3.pt"]
    assert shipped_committee("default_v2") == [] and shipped_committee(model_file) == []


@pytest.mark.parametrize("flag", [[], ["--no-committee"]])
def test_md_watches_the_shipped_model_with_its_committee_unless_told_not_to(tmp_path, flag):
    proc = subprocess.run(
        CLI
        + ["md", str(ROOT / "inputs" / "aspirin"), "--steps", "40", "--workdir", str(tmp_path)]
        + ["--check-every", "20", *flag],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if flag:
        assert not (tmp_path / "committee.txt").exists() and "committee watch" not in proc.stdout
    else:
        assert "committee watch: the 3 models shipped with default" in proc.stdout
        checks = np.loadtxt(tmp_path / "committee.txt", comments="#", ndmin=2)
        assert checks[:, 0].tolist() == [20, 40]
        assert re.search(r"committee: 2 checks, largest force spread", proc.stdout), proc.stdout


def test_md_committee_watch_warns_and_reports_its_cost(tmp_path):
    """md --committee: every N steps the members' force spread is logged, a warning printed above
    the threshold (0 here: every check warns), and the summary gives the spread and the cost."""
    proc = subprocess.run(
        CLI
        + [
            "md",
            str(ROOT / "inputs" / "aspirin"),
            "--steps",
            "100",
            "--workdir",
            str(tmp_path),
            "--committee",
            *COMMITTEE,
            "--check-every",
            "25",
            "--warn-above",
            "0",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = np.loadtxt(tmp_path / "committee.txt", comments="#", ndmin=2)
    assert checks[:, 0].tolist() == [25, 50, 75, 100] and (checks[:, 1] > 0.01).all()
    assert proc.stdout.count("mlff-distiller: committee warning at step") == 4
    summary = re.search(
        r"committee: 4 checks, largest force spread ([0-9.]+) eV/A at step \d+; ([0-9.]+) ms per check", proc.stdout
    )
    assert summary and float(summary[1]) == pytest.approx(checks[:, 1].max(), abs=1e-3), proc.stdout


def test_md_committee_watch_on_two_ranks(tmp_path):
    """The watch gathers the whole periodic box from both ranks: 192 waters through the plugin,
    50 steps of NVT and 50 of NVE, a check every 25 steps across both runs."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shutil.copy(ROOT / "inputs" / "water" / "water192.data", inputs)
    script = (ROOT / "inputs" / "water" / "in.nvt_nve").read_text()
    (inputs / "in.nvt_nve").write_text(script.replace("variable nvt_steps index 2000", "variable nvt_steps index 50"))
    proc = subprocess.run(
        CLI
        + ["md", str(inputs / "in.nvt_nve"), "--np", "2", "--steps", "50", "--check-every", "25"]
        + ["--workdir", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    checks = np.loadtxt(tmp_path / "run" / "committee.txt", comments="#", ndmin=2)
    assert checks[:, 0].tolist() == [25, 50, 75, 100] and (checks[:, 1] > 0.01).all()
    assert "committee: 4 checks, largest force spread" in proc.stdout


def test_md_committee_of_one_is_refused(tmp_path):
    proc = subprocess.run(
        CLI
        + [
            "md",
            str(ROOT / "inputs" / "aspirin"),
            "--steps",
            "10",
            "--workdir",
            str(tmp_path),
            "--committee",
            COMMITTEE[0],
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode != 0 and "a committee needs at least two models" in proc.stdout + proc.stderr
