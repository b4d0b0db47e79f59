"""Evaluation: the metrics measure what they say, and the command writes its table, JSON and plot."""

import json

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mlff_distiller import cli
from mlff_distiller.distill.evaluate import committee_disagreement, evaluate_file, format_table, ranking_metrics
from mlff_distiller.distill.train import build_model
from mlff_distiller.model.calculator import StudentCalculator
from mlff_distiller.model.io import load_model, save_model
from mlff_distiller.model.painn import PaiNNConfig

CONFIG = PaiNNConfig(elements=["H", "C", "N", "O"], n_features=16, n_layers=2, n_radial=8, cutoff=4.0)
ENERGY_OFFSET = 0.002  # eV per atom
FORCE_OFFSET = 0.05  # eV/A, on the x component only


@pytest.fixture
def model_file(tmp_path, structures):
    return save_model(build_model(CONFIG, structures, seed=0, dtype=torch.float64), tmp_path / "m.pt")


@pytest.fixture
def offset_labels(tmp_path, structures, model_file):
    """The student's own predictions, shifted by known offsets: the errors are known exactly."""
    calc = StudentCalculator(str(model_file))
    labelled = []
    for atoms in structures:
        atoms = atoms.copy()
        atoms.calc = calc
        energy = atoms.get_potential_energy() + ENERGY_OFFSET * len(atoms)
        forces = atoms.get_forces() + [FORCE_OFFSET, 0.0, 0.0]
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        labelled.append(atoms)
    path = tmp_path / "offset.extxyz"
    ase.io.write(path, labelled)
    return path


def test_metrics_equal_the_known_errors(model_file, offset_labels):
    # rel 1e-5, not 1e-9: extended XYZ stores positions to 1e-8 A, which moves the predictions
    metrics = evaluate_file(model_file, offset_labels, group_key="molecule")
    assert metrics["energy_mae_meV_per_atom"] == pytest.approx(1e3 * ENERGY_OFFSET, rel=1e-5)
    assert metrics["force_mae_meV_per_A"] == pytest.approx(1e3 * FORCE_OFFSET / 3, rel=1e-5)
    assert metrics["force_rmse_meV_per_A"] == pytest.approx(1e3 * FORCE_OFFSET / np.sqrt(3), rel=1e-5)
    assert metrics["force_max_error_meV_per_A"] == pytest.approx(1e3 * FORCE_OFFSET, rel=1e-5)
    assert set(metrics["per_element"]) == {"H", "C", "N", "O"}
    for element in metrics["per_element"].values():
        assert element["force_mae_meV_per_A"] == pytest.approx(1e3 * FORCE_OFFSET / 3, rel=1e-5)
    assert set(metrics["per_group"]) == {"H2O", "CH4", "NH3", "CH3OH"}
    assert metrics["per_group"]["NH3"]["n_structures"] == 6
    assert metrics["n_atoms"] == 6 * (3 + 5 + 4 + 6)
    # the metrics go into model metadata, which must load with weights_only=True
    assert (
        load_model(
            save_model(load_model(model_file), model_file.with_name("with_metrics.pt"), {"metrics": metrics})
        ).metadata["metrics"]
        == metrics
    )
    table = format_table(metrics)
    assert "forces on N" in table and "CH3OH" in table


def test_evaluate_command_writes_table_json_and_plot(model_file, data_file, tmp_path, capsys):
    json_path, plot_path = tmp_path / "metrics.json", tmp_path / "parity.png"
    code = cli.main(
        [
            "evaluate",
            str(model_file),
            str(data_file),
            "--json",
            str(json_path),
            "--plot",
            str(plot_path),
            "--group-by",
            "molecule",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "all structures" in out and "meV/atom" in out
    metrics = json.loads(json_path.read_text())
    assert metrics["n_structures"] == 24 and metrics["force_mae_meV_per_A"] > 0
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_command_json_to_stdout(model_file, data_file, capsys):
    assert cli.main(["evaluate", str(model_file), str(data_file), "--json", "-"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"energy_mae_meV_per_atom", "force_mae_meV_per_A", "force_rmse_meV_per_A", "per_element"} <= set(metrics)


def test_evaluate_command_errors_name_the_problem(model_file, tmp_path, capsys):
    assert cli.main(["evaluate", str(model_file), str(tmp_path / "missing.extxyz")]) == 2
    assert "no data set file" in capsys.readouterr().err
    h2s = Atoms("SH2", positions=[[0, 0, 0], [1.34, 0, 0], [-0.1, 1.33, 0]])
    h2s.calc = SinglePointCalculator(h2s, energy=-1.0, forces=np.zeros((3, 3)))
    ase.io.write(tmp_path / "h2s.extxyz", h2s)
    assert cli.main(["evaluate", str(model_file), str(tmp_path / "h2s.extxyz")]) == 2
    assert "element(s) S not in the model's elements" in capsys.readouterr().err


def test_grouping_by_several_keys_gives_every_combination(model_file, offset_labels):
    frames = ase.io.read(offset_labels, ":")
    for k, atoms in enumerate(frames):
        atoms.info["distortion"] = "small" if k % 2 else "large"
    ase.io.write(offset_labels, frames)
    metrics = evaluate_file(model_file, offset_labels, group_key=["molecule", "distortion"])
    assert len(metrics["per_group"]) == 8 and metrics["per_group"]["NH3 / small"]["n_structures"] == 3
    assert "CH4 / large" in format_table(metrics)


def test_committee_disagreement_is_the_largest_spread_of_an_atom():
    # two members, two structures of 1 and 2 atoms; member forces differ by +-delta on one atom each
    forces = np.zeros((2, 3, 3))
    forces[0, 0, 0], forces[1, 0, 0] = 0.3, -0.3  # structure 0: spread 0.3
    forces[0, 2, :] = [0.0, 0.1, 0.0]  # structure 1: atom 2 spread 0.05, atom 1 none
    spread = committee_disagreement(forces, np.array([1, 2]))
    np.testing.assert_allclose(spread, [0.3, 0.05])


def test_ranking_metrics_see_a_perfect_and_a_reversed_ranking():
    errors = np.linspace(0.1, 5.0, 40)
    good = ranking_metrics(errors**2, errors, errors)
    assert good["spearman_max_error"] == pytest.approx(1.0) and good["worst_decile_found"] == 1.0
    bad = ranking_metrics(-errors, errors, errors)
    assert bad["spearman_rmse"] == pytest.approx(-1.0) and bad["worst_decile_found"] == 0.0


def test_evaluate_command_with_a_committee(model_file, data_file, structures, tmp_path, capsys):
    other = save_model(build_model(CONFIG, structures, seed=1, dtype=torch.float64), tmp_path / "other.pt")
    json_path, rows_path = tmp_path / "metrics.json", tmp_path / "rows.csv"
    code = cli.main(
        [
            "evaluate",
            str(model_file),
            str(data_file),
            "--committee",
            str(model_file),
            str(other),
            "--json",
            str(json_path),
            "--per-structure",
            str(rows_path),
        ]
    )
    assert code == 0, capsys.readouterr().err
    committee = json.loads(json_path.read_text())["committee"]
    assert "per_group" not in committee  # no grouping asked for
    assert committee["n_members"] == 2 and -1 <= committee["spearman_max_error"] <= 1
    assert "committee of 2" in capsys.readouterr().out
    lines = rows_path.read_text().splitlines()
    assert len(lines) == 25 and lines[0].startswith("structure,group,n_atoms,force_max_error")
    assert all(float(line.split(",")[-1]) > 0 for line in lines[1:])  # two different models disagree


def test_committee_errors_name_the_problem(model_file, data_file, tmp_path, capsys):
    assert cli.main(["evaluate", str(model_file), str(data_file), "--committee", str(model_file)]) == 2
    assert "at least two models" in capsys.readouterr().err
    assert cli.main(["evaluate", str(model_file), str(data_file), "--per-structure", str(tmp_path / "x.csv")]) == 2
    assert "add --committee" in capsys.readouterr().err
    other = CONFIG.to_dict() | {"cutoff": 3.0}
    other_file = save_model(
        build_model(PaiNNConfig(**other), ase.io.read(data_file, ":"), dtype=torch.float64),
        tmp_path / "other_cutoff.pt",
    )
    assert cli.main(["evaluate", str(model_file), str(data_file), "--committee", str(model_file), str(other_file)]) == 2
    assert "same --elements and --cutoff" in capsys.readouterr().err


def test_committee_ranking_is_also_reported_within_each_group(model_file, offset_labels, structures, tmp_path):
    other = save_model(build_model(CONFIG, structures, seed=1, dtype=torch.float64), tmp_path / "other.pt")
    frames = ase.io.read(offset_labels, ":")
    for k, atoms in enumerate(frames):
        atoms.info["half"] = "first" if k < 12 else "second"
    ase.io.write(offset_labels, frames)
    metrics = evaluate_file(model_file, offset_labels, group_key="half", committee=[model_file, other])
    per_group = metrics["committee"]["per_group"]
    assert set(per_group) == {"first", "second"}
    assert all(-1 <= m["spearman_max_error"] <= 1 for m in per_group.values())
    assert "  first" in format_table(metrics).split("committee of 2")[1]
