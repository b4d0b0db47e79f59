"""The fused kernels of the message block, and the one decision of when they run.

``blocks.Message`` computes its edge sums either eagerly (gathers, products and scatters as
separate torch operations, chunked: the reference, differentiable for training) or with fused
operators (one pass over the edges each way, no [E,3F] temporary): on the CPU those of
``message_cpu.cpp`` (C++, ``mlff_fused::*``), on a GPU those of ``message_triton.py`` (Triton,
``mlff_triton::*``), the same arithmetic with the same signatures. ``applies`` decides, for every
call:

* the tensors' device has its kernels: on the CPU the library is built and loaded
  (``scripts/setup.sh`` builds it into ``PREFIX/lib/mlff-distiller/``), on a GPU Triton imports
  (``MLFF_TRITON=0`` keeps a GPU on the eager block); ``UNAVAILABLE`` says why a device has none,
  and without them everything runs eagerly;
* nothing needs a gradient through the block: training differentiates the analytic backward
  itself, which the fused operators do not support;
* ``ENABLED`` is true (``MLFF_FUSED=0`` in the environment, or setting it to False, runs the eager
  reference, for comparisons).

Both kinds of operators are visible to torch.compile and torch.export (meta kernels; Triton
operators are traced): a CPU package of ``mliap/aoti`` (``lammps/aoti.py``) calls the library's
operators from C++ (the plugin loads the same library), a CUDA package carries the Triton kernels.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch import Tensor

LIBRARY = Path("lib", "mlff-distiller", "libmlff_fused.so")  # under the environment's prefix
ENABLED = os.environ.get("MLFF_FUSED", "1") != "0"


def library_path() -> Path:
    """Where the environment's fused library lives (``lammps_plugin/aoti_protocol.h`` names the same
    place, relative to the plugin)."""
    return Path(sys.prefix) / LIBRARY


def _load_library() -> str | None:
    """Load the CPU library once; the reason it is not used, or None when it is."""
    if hasattr(torch.ops.mlff_fused, "message_forward"):  # loaded already (by the plugin, say)
        return None
    path = library_path()
    if not path.exists():
        return f"{path} does not exist (run `make setup`)"
    try:
        torch.ops.load_library(str(path))
    except (OSError, RuntimeError) as exc:  # built against another torch, for another processor, ...
        return f"{path} did not load ({str(exc).splitlines()[0]}): run `make setup` again"
    return None


def _load_triton() -> str | None:
    """Import the GPU kernels where there is a GPU and they are asked for; the reason they are not
    used, or None."""
    if not torch.cuda.is_available():
        return "no CUDA device"
    if os.environ.get("MLFF_TRITON", "1") == "0":
        return "turned off by MLFF_TRITON=0"
    try:
        from . import message_triton  # noqa: F401 (registers the mlff_triton operators)
    except ImportError as exc:
        return f"Triton does not import ({exc})"
    return None


# per device type: None where the operators are registered, else why not
UNAVAILABLE = {"cpu": _load_library(), "cuda": _load_triton()}
OPERATORS = {"cpu": "mlff_fused", "cuda": "mlff_triton"}  # the operators' namespace per device type


def serves(device: torch.device | str) -> bool:
    """Whether the fused kernels run on ``device`` in this process (built, loaded, enabled)."""
    return ENABLED and UNAVAILABLE.get(torch.device(device).type, "no kernels") is None


def operators(device: torch.device):
    return getattr(torch.ops, OPERATORS[device.type])


def applies(*tensors: Tensor) -> bool:
    """Whether the fused kernels compute the message block of these tensors (see the module's
    docstring); a constant for torch.compile, which guards on the module's flags."""
    return serves(tensors[0].device) and not any(t.requires_grad for t in tensors)


def message_sums(x, v, filt, u, edge_i, edge_j, v_is_zero: bool) -> tuple[Tensor, Tensor]:
    """ds [N,F], dv [N,3,F]: ``blocks.Message.message_sums`` (the reference; shapes there), fused."""
    return operators(x.device).message_forward(x, v, *filt, u, edge_i, edge_j, v_is_zero)


def message_sums_backward(
    grad_s, grad_v, x, v, filt, u, edge_i, edge_j, v_is_zero: bool, need_input_grads: bool
) -> tuple[Tensor | None, Tensor | None, Tensor, Tensor]:
    """The transpose of ``message_sums``: g_x [N,3F] and g_v [N,3,F] summed into the senders (None
    unless ``need_input_grads``), g_filt projected on the filter's [A | b] [E,K+1], g_u [E,3]."""
    g_x, g_v, projected, g_u = operators(x.device).message_backward(
        grad_s, grad_v, x, v, *filt, u, edge_i, edge_j, v_is_zero, need_input_grads
    )
    return (g_x, g_v, projected, g_u) if need_input_grads else (None, None, projected, g_u)
