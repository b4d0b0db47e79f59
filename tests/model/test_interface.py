"""The student-model interface (``interface.StudentModel``) and the architecture registry of model
files (``architectures.py``): PaiNN satisfies the one and is found through the other."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from mlff_distiller.model import architectures
from mlff_distiller.model.architectures import (
    ARCHITECTURES,
    architecture_name,
    build_student,
    register_architecture,
    student_config,
)
from mlff_distiller.model.blocks import EdgeGeometry
from mlff_distiller.model.graph import graph_from_atoms
from mlff_distiller.model.interface import StudentConfig, StudentModel
from mlff_distiller.model.io import load_model, save_model, shipped_models
from mlff_distiller.model.painn import PaiNN, PaiNNConfig

from model_cases import make_model, structures


def test_painn_is_a_student_model(model):
    assert isinstance(model, StudentModel) and isinstance(model.config, StudentConfig)
    assert model.n_message_passes == model.config.n_layers
    assert (model.elements, model.cutoff) == (model.config.elements, model.config.cutoff)
    assert not isinstance(nn.Linear(2, 2), StudentModel) and not isinstance("default", StudentModel)


def test_protocol_names_what_painn_offers():
    """Every member of the Protocol exists on PaiNN (a renamed method would pass ``isinstance``
    on a stale class no more)."""
    members = {name for name in vars(StudentModel) if not name.startswith("_")}
    assert members >= {
        "energies_and_edge_gradients",
        "energies_and_weighted_edge_gradients",
        "elements",
        "cutoff",
        "n_message_passes",
        "dtype",
        "device",
        "check_layout",
        "validate_inputs",
    }
    assert all(hasattr(PaiNN, name) for name in members - {"config"})


def test_reference_energies_and_prior_energy():
    model = make_model(repulsion=True)
    assert model.reference_energies is model.readout.shift
    model.set_reference_energies(np.array([1.0, 2.0, 3.0, 4.0]), 0.5)
    assert model.readout.shift.tolist() == [1.0, 2.0, 3.0, 4.0] and model.readout.scale.tolist() == [0.5] * 4
    atoms = structures()["water_triclinic"]
    g = graph_from_atoms([atoms], model.elements, model.cutoff)
    energy = model.prior_energy(g.species, g.edge_i, g.edge_j, g.r_ij)
    (d, _), _ = EdgeGeometry.forward(g.r_ij)
    assert energy.dtype == torch.float64
    assert torch.equal(energy, model.repulsion(d, g.species, g.edge_i, g.edge_j)[0].double().sum())
    assert make_model().prior_energy(g.species, g.edge_i, g.edge_j, g.r_ij) is None


def test_model_file_names_its_architecture_and_round_trips(tmp_path, model):
    path = save_model(model, tmp_path / "m.pt")
    assert torch.load(path, weights_only=True)["architecture"] == "painn" == architecture_name(model)
    loaded = load_model(path)
    assert type(loaded) is PaiNN and loaded.config == model.config
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)


def test_file_without_the_architecture_key_is_a_painn(tmp_path, model):
    path = save_model(model, tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    del payload["architecture"]
    torch.save(payload, tmp_path / "old.pt")
    loaded = load_model(tmp_path / "old.pt")
    assert type(loaded) is PaiNN and loaded.config == model.config


@pytest.mark.parametrize("name", ["default", "default_v2"])
def test_shipped_models_written_before_the_key_load_without_it(name):
    """These shipped files predate the key and stay as they are (their checksums are cited)."""
    from mlff_distiller.model.io import resolve_model_path

    assert "architecture" not in torch.load(resolve_model_path(name), weights_only=True)
    assert type(load_model(name)) is PaiNN


@pytest.mark.parametrize("name", shipped_models())
def test_every_shipped_model_is_a_painn(name):
    assert type(load_model(name)) is PaiNN


def test_unknown_architecture_names_the_known_ones(tmp_path, model):
    path = save_model(model, tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["architecture"] = "mace"
    torch.save(payload, tmp_path / "mace.pt")
    with pytest.raises(ValueError, match=r"unknown student architecture 'mace'.*knows painn"):
        load_model(tmp_path / "mace.pt")
    with pytest.raises(ValueError, match="knows painn"):
        build_student({}, "mace")


@dataclasses.dataclass
class TinyConfig:
    elements: list
    cutoff: float = 3.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class Tiny(PaiNN):
    """Another architecture, here a PaiNN with a fixed width under another name and config."""

    def __init__(self, config: TinyConfig):
        super().__init__(
            PaiNNConfig(elements=config.elements, n_features=4, n_layers=1, n_radial=2, cutoff=config.cutoff)
        )
        self.config = config


def test_a_registered_architecture_round_trips(tmp_path, monkeypatch):
    monkeypatch.setattr(architectures, "ARCHITECTURES", dict(ARCHITECTURES))
    register_architecture("tiny", Tiny, TinyConfig)
    model = build_student(TinyConfig(elements=["H", "O"]))
    assert type(model) is Tiny and architecture_name(model) == "tiny"
    assert student_config("tiny", model.config.to_dict()) == model.config
    loaded = load_model(save_model(model, tmp_path / "tiny.pt"))
    assert type(loaded) is Tiny and loaded.config == model.config
    with pytest.raises(ValueError, match="already registered"):
        register_architecture("tiny", PaiNN, PaiNNConfig)
    with pytest.raises(TypeError, match="not a torch.nn.Module"):
        register_architecture("other", TinyConfig, TinyConfig)
    assert "tiny" not in ARCHITECTURES  # the module's registry was the patched copy


def test_an_unregistered_class_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="not the model class of a registered architecture"):
        save_model(Tiny(TinyConfig(elements=["H"])), tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
