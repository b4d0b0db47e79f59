"""Which torch device, and how many CPU threads, the model uses in each LAMMPS rank.

An export asks for "cpu" or "cuda" (or "cuda:N"). "cuda" gives each MPI rank the GPU of its
node-local rank modulo the GPUs it sees, so `mpirun -np 2` on a 2-GPU node runs one rank per GPU,
and more ranks than GPUs share cards. ``MLFF_DEVICE`` overrides what the export asks for, per
process (e.g. ``MLFF_DEVICE=cpu`` to run a CUDA export on CPUs, ``MLFF_DEVICE=cuda:1``).

Threads: torch follows ``OMP_NUM_THREADS`` when it is set. When it is not, a rank of a several-rank
run uses one thread (`mpirun -np 16` on 16 cores then starts 16 threads, not 16 x 16), and a
single-rank run keeps torch's default, all the cores of the machine.
"""

from __future__ import annotations

import os

import torch

DEVICE_OVERRIDE = "MLFF_DEVICE"
# set by mpirun/srun for each process: Open MPI, MPICH (hydra), MVAPICH, Slurm
LOCAL_RANK_VARIABLES = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "MV2_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID")
WORLD_RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK", "SLURM_PROCID")
WORLD_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE", "SLURM_NTASKS")


class DeviceError(RuntimeError):
    """This process cannot use the device the model asks for."""


def world_size() -> int:
    for name in WORLD_SIZE_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


def world_rank() -> int:
    for name in WORLD_RANK_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def set_rank_threads() -> int:
    """One torch thread per rank of a several-rank run unless OMP_NUM_THREADS says otherwise."""
    if "OMP_NUM_THREADS" not in os.environ and world_size() > 1:
        torch.set_num_threads(1)
    return torch.get_num_threads()


def local_rank() -> int:
    for name in LOCAL_RANK_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def check_device_request(device: str) -> None:
    """Refuse at export what no machine could run: anything but cpu, cuda, cuda:N."""
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        raise ValueError(f"unknown device {device!r}: use cpu, cuda (one GPU per rank) or cuda:N")


def rank_device(requested: str) -> str:
    """The device this process runs the model on, for an export that asks for ``requested``."""
    requested = os.environ.get(DEVICE_OVERRIDE) or requested
    check_device_request(requested)
    if requested == "cpu":
        return "cpu"
    if not torch.cuda.is_available():
        raise DeviceError(
            f"the model asks for device {requested!r} but this torch ({torch.__version__}) sees no usable CUDA GPU "
            f"(CUDA build: {torch.version.cuda or 'no'}): export with --device cpu, or set {DEVICE_OVERRIDE}=cpu"
        )
    count = torch.cuda.device_count()
    if requested == "cuda":
        return f"cuda:{local_rank() % count}"
    index = int(requested.split(":")[1])
    if index >= count:
        raise DeviceError(
            f"the model asks for GPU {index} but only {count} GPU(s) are visible "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}): use --device "
            f"cuda to give each rank its own GPU, or {DEVICE_OVERRIDE}=cuda:0"
        )
    return requested


def claim_rank_device(requested: str) -> str:
    """``rank_device``, made this process's current CUDA device when it is a GPU, so that the
    streams, graph captures and synchronisations of this rank use its card."""
    device = rank_device(requested)
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    return device
