"""The student architectures by name: the ``"architecture"`` key of a model file (and of a training
checkpoint) names one here, and every student rebuilt from a file's config is built here.

An architecture is a model class (an ``interface.StudentModel`` and ``torch.nn.Module``, built as
``model_class(config)``) and its config class (built as ``config_class(**config.to_dict())``).
Another one joins with ``register_architecture``; files written before the key existed hold a
PaiNN (``DEFAULT_ARCHITECTURE``).
"""

from __future__ import annotations

from typing import NamedTuple

from torch import nn

from .interface import StudentConfig, StudentModel
from .painn import PaiNN, PaiNNConfig


class Architecture(NamedTuple):
    model_class: type
    config_class: type


ARCHITECTURES: dict[str, Architecture] = {"painn": Architecture(PaiNN, PaiNNConfig)}
DEFAULT_ARCHITECTURE = "painn"  # of model files and checkpoints without the key


def register_architecture(name: str, model_class: type, config_class: type) -> None:
    """Make ``name`` loadable: model files with ``"architecture": name`` build ``model_class``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"an architecture's name must be a non-empty string, not {name!r}")
    if name in ARCHITECTURES and ARCHITECTURES[name] != (model_class, config_class):
        raise ValueError(f"architecture {name!r} is already registered, as {ARCHITECTURES[name].model_class.__name__}")
    if not (isinstance(model_class, type) and issubclass(model_class, nn.Module)):
        raise TypeError(f"{model_class!r} is not a torch.nn.Module class")
    ARCHITECTURES[name] = Architecture(model_class, config_class)


def architecture(name: str) -> Architecture:
    """The registered architecture ``name``; ValueError naming the known ones for any other."""
    try:
        return ARCHITECTURES[name]
    except (KeyError, TypeError):  # TypeError: an unhashable value where a name belongs
        raise ValueError(
            f"unknown student architecture {name!r}: this mlff-distiller knows {', '.join(sorted(ARCHITECTURES))} "
            "(a model file from a newer mlff-distiller, or one whose architecture was not registered: "
            "mlff_distiller.model.architectures.register_architecture)"
        ) from None


def _registered(found: type, kind: str, field: str) -> str:
    """The name registered for exactly this class: a subclass is another architecture (saved as
    its base, it would load without what it adds)."""
    for name, entry in ARCHITECTURES.items():
        if getattr(entry, field) is found:
            return name
    raise ValueError(
        f"{found.__name__} is not the {kind} class of a registered architecture "
        f"({', '.join(sorted(ARCHITECTURES))}): register it with register_architecture"
    )


def architecture_name(model: StudentModel) -> str:
    """The name under which ``model``'s class is registered (what its model file records)."""
    return _registered(type(model), "model", "model_class")


def student_config(name: str, config: dict) -> StudentConfig:
    """The config object of architecture ``name`` from its ``to_dict()`` (a file's ``config``)."""
    return architecture(name).config_class(**config)


def build_student(config: StudentConfig | dict, name: str | None = None) -> StudentModel:
    """A freshly initialised student: from a config object (its architecture found by the
    config's class unless ``name`` is given), or from a config dict and ``name`` (default
    ``DEFAULT_ARCHITECTURE``)."""
    if isinstance(config, dict):
        config = student_config(name or DEFAULT_ARCHITECTURE, config)
    name = name or _registered(type(config), "config", "config_class")
    return architecture(name).model_class(config)
