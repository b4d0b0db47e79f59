"""`mlff-distiller export`, `lammps-input` and `md` as a user runs them (real LAMMPS underneath)."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mlff_distiller.lammps.export import export, read_export
from mlff_distiller.lammps.unified import StudentUnified
from mlff_distiller.model.io import save_model
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


def test_lammps_input_command_prints_every_mode(tmp_path, model_file):
    out = export(model_file, tmp_path / "x.mliap")
    text = subprocess.run(CLI + ["lammps-input", str(out), "--elements", "O", "H"], capture_output=True,
                          text=True, check=True).stdout
    assert f"pair_style mliap unified {out} 1" in text and "comm_modify cutoff 17" in text
    assert "pair_coeff * * O H" in text and "newton on" in text
    bad = subprocess.run(CLI + ["lammps-input", str(out), "--elements", "Si"], capture_output=True, text=True)
    assert bad.returncode != 0 and "Si" in bad.stderr


@pytest.mark.parametrize("method", ["analytic", "autograd"])
def test_md_command_reports_speed_and_drift(tmp_path, model_file, method):
    proc = subprocess.run(CLI + ["md", str(ROOT / "inputs" / "aspirin"), "--model", str(model_file), "--steps", "100",
                                 "--method", method], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ms/step" in proc.stdout and "energy drift" in proc.stdout
    assert (ROOT / "runs" / "aspirin" / "energy.png").stat().st_size > 1000
