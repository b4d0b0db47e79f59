"""Model files: architecture name + config + weights in a torch file loaded with
``weights_only=True`` (no code runs), with a sha256 checksum of the weights checked on load, so a
damaged file never runs. The architecture (``architectures.py``) rebuilds the student from its
config; files without the key hold a PaiNN."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import torch

from ..files import atomic_path
from .architectures import DEFAULT_ARCHITECTURE, architecture, architecture_name
from .interface import StudentModel

FORMAT = "mlff-distiller-model"
FORMAT_VERSION = 2  # 2 added the weights' checksum; version 1 files still load, with a warning
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "shipped_models"  # weight files, apart from the code


def shipped_models() -> list[str]:
    # hidden names are the temporaries of a write that was killed (``files.atomic_path``)
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.pt") if not p.name.startswith("."))


def shipped_committee(name_or_path: str | Path) -> list[Path]:
    """The committee shipped with a shipped model (``shipped_models/committees/<name>/member*.pt``,
    models trained like it with other seeds, for ``md``'s watch); [] for a model file or a model
    shipped without one."""
    if Path(name_or_path).is_file():
        return []
    return sorted((SHIPPED_DIR / "committees" / str(name_or_path)).glob("member*.pt"))


def resolve_model_path(name_or_path: str | Path) -> Path:
    """A path to a model file, or the name of a model shipped with the package (e.g. ``default``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = SHIPPED_DIR / f"{name_or_path}.pt"
    if shipped.is_file():
        return shipped
    raise FileNotFoundError(
        f"no model file {str(name_or_path)!r} and no shipped model of that name "
        f"(shipped: {', '.join(shipped_models()) or 'none'})"
    )


def plain_data(metadata: dict | None) -> dict:
    """Metadata as JSON types only (numpy scalars and strings become Python ones), so the file
    still loads with ``weights_only=True``."""
    return json.loads(json.dumps(metadata or {}, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def weights_checksum(state_dict: dict) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def save_model(model: StudentModel, path: str | Path, metadata: dict | None = None) -> Path:
    """Write the model file whole or not at all: a committee takes "member file exists" for
    "member trained", and LAMMPS runs may be reading the old file."""
    path = Path(path)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": architecture_name(model),
        "config": model.config.to_dict(),
        "state_dict": state,
        "weights_sha256": weights_checksum(state),
        "metadata": plain_data(metadata),
    }
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)
    return path


def check_weights(payload: dict, path) -> None:
    state = payload.get("state_dict")
    if not isinstance(state, dict):
        raise ValueError(f"{path} is damaged: it holds no weights")
    if payload.get("format_version") == 1:
        warnings.warn(
            f"{path} is a version 1 model file without a checksum of its weights, so damage cannot be "
            "detected: re-save it with mlff_distiller.model.io.save_model(load_model(path), path)"
        )
        return
    if weights_checksum(state) != payload.get("weights_sha256"):
        raise ValueError(
            f"{path} is damaged: its weights fail their sha256 checksum. Use an intact copy (the "
            "training run's output, or `mlff-distiller train` again)"
        )


def load_model(name_or_path: str | Path, dtype: torch.dtype = torch.float64) -> StudentModel:
    """Load a model file (a path, a shipped model's name, or an open binary file) in ``dtype``,
    frozen for inference."""
    path = name_or_path if hasattr(name_or_path, "read") else resolve_model_path(name_or_path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a damaged or foreign file
        raise ValueError(
            f"{path} is not a readable mlff-distiller model file (damaged, truncated, or another "
            f"format): {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is a torch file but not an mlff-distiller model (no '{FORMAT}' header)")
    version = payload.get("format_version")
    if version not in (1, FORMAT_VERSION):
        raise ValueError(
            f"{path} has model format version {version}, this mlff-distiller reads versions 1 to "
            f"{FORMAT_VERSION}: use the mlff-distiller that wrote it"
        )
    check_weights(payload, path)
    name = payload.get("architecture", DEFAULT_ARCHITECTURE)  # the key came after version 2's first files
    try:
        model_class, config_class = architecture(name)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    try:
        model = model_class(config_class(**payload["config"]))
        model.load_state_dict(payload["state_dict"])
    except (TypeError, KeyError, RuntimeError) as exc:
        raise ValueError(f"{path} is damaged: its config and weights do not form a model ({exc})") from exc
    model.metadata = payload.get("metadata", {})
    return model.to(dtype).eval().requires_grad_(False)
