"""Model files (format, versions, damage) and the ASE calculator (forces, stress, per-atom energies)."""

import copy

import numpy as np
import pytest
import torch

from mlff_distiller.model.calculator import StudentCalculator
from mlff_distiller.model.io import FORMAT, load_model, save_model

from model_cases import structures


def test_round_trip_keeps_numbers(tmp_path, model):
    path = save_model(model, tmp_path / "m.pt", {"note": "test"})
    loaded = load_model(path)
    assert loaded.config == model.config and loaded.metadata == {"note": "test"}
    atoms = structures()["water_triclinic"]
    for a, b in zip(
        StudentCalculator(model).get_property("forces", atoms), StudentCalculator(loaded).get_property("forces", atoms)
    ):
        assert np.array_equal(a, b)


def test_numpy_metadata_is_stored_as_plain_data(tmp_path, model):
    path = save_model(model, tmp_path / "m.pt", {np.str_("C"): {"mae": np.float64(0.5), "n": np.int64(3)}})
    assert load_model(path).metadata == {"C": {"mae": 0.5, "n": 3}}


def test_damaged_and_foreign_files(tmp_path, model):
    path = save_model(model, tmp_path / "m.pt")
    (tmp_path / "cut.pt").write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match="not a readable mlff-distiller model file"):
        load_model(tmp_path / "cut.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an mlff-distiller model"):
        load_model(tmp_path / "other.pt")
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="format version 99"):
        load_model(tmp_path / "future.pt")
    payload["format_version"] = 2
    payload["state_dict"].pop("embedding.weight")
    torch.save(payload, tmp_path / "partial.pt")
    with pytest.raises(ValueError, match="damaged"):
        load_model(tmp_path / "partial.pt")
    with pytest.raises(FileNotFoundError, match="no model file"):
        load_model(tmp_path / "missing.pt")
    assert payload["format"] == FORMAT


def test_flipped_weight_bytes_fail_the_checksum(tmp_path, model):
    """64 bytes flipped inside a stored tensor: the file still unpickles, the checksum refuses it."""
    path = save_model(model, tmp_path / "m.pt")
    data = path.read_bytes()
    weight = max(model.state_dict().values(), key=lambda t: t.numel()).detach().numpy().tobytes()
    start = data.find(weight[:64])
    assert start > 0
    path.write_bytes(data[:start] + bytes(b ^ 0x55 for b in data[start : start + 64]) + data[start + 64 :])
    with pytest.raises(ValueError, match="sha256 checksum"):
        load_model(path)


def test_version_1_files_load_with_a_warning(tmp_path, model):
    path = save_model(model, tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 1
    del payload["weights_sha256"]
    torch.save(payload, tmp_path / "v1.pt")
    with pytest.warns(UserWarning, match="without a checksum"):
        load_model(tmp_path / "v1.pt")


def test_file_with_code_is_refused(tmp_path):
    """weights_only loading: a pickle that would run code is rejected, not executed."""
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"format": FORMAT, "x": Evil()}, fh)
    with pytest.raises(ValueError, match="not a readable"):
        load_model(tmp_path / "evil.pt")


@pytest.mark.parametrize("name", ["acetamide", "water_triclinic"])
def test_calculator_forces_stress_energies(name, model):
    atoms = structures()[name].copy()
    atoms.calc = StudentCalculator(model)
    energy = atoms.get_potential_energy()
    assert abs(atoms.get_potential_energies().sum() - energy) < 1e-10
    assert atoms.get_potential_energy(force_consistent=True) == energy
    numeric = atoms.calc.calculate_numerical_forces(atoms, d=1e-5)
    assert np.abs(atoms.get_forces() - numeric).max() < 1e-7
    if atoms.pbc.all():
        numeric_stress = atoms.calc.calculate_numerical_stress(atoms, d=1e-6, voigt=True)
        assert np.abs(atoms.get_stress() - numeric_stress).max() < 1e-8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_calculator_with_a_model_on_the_gpu_agrees_with_the_cpu(model):
    """Active learning's student MD and committee run the calculator with the model on a GPU."""
    atoms = structures()["water_triclinic"]
    on_gpu = copy.deepcopy(model).to("cuda")
    for prop in ("energies", "forces", "stress"):
        np.testing.assert_allclose(
            StudentCalculator(on_gpu).get_property(prop, atoms),
            StudentCalculator(model).get_property(prop, atoms),
            rtol=1e-10,
            atol=1e-10,
        )


def test_calculator_autograd_method_agrees(model):
    atoms = structures()["ethanol"]
    fa = StudentCalculator(model).get_property("forces", atoms)
    fr = StudentCalculator(model, method="autograd").get_property("forces", atoms)
    assert np.abs(fa - fr).max() < 1e-10


def test_the_package_exports_what_users_type():
    import mlff_distiller
    from mlff_distiller.lammps.export import export
    from mlff_distiller.model.io import load_model

    assert mlff_distiller.export is export and mlff_distiller.load_model is load_model
    for name in mlff_distiller.__all__:
        assert getattr(mlff_distiller, name) is not None
    with pytest.raises(AttributeError):
        mlff_distiller.not_a_name
