"""Training on a device (TrainConfig.device, `train --device`): a GPU that is not there is refused
at once, checkpoints hold CPU tensors and resume with the other device's Adam kernel, and on a GPU
a run trains there, without waiting for it within an epoch, into a model file that loads on the CPU.

The GPU tests are skipped where torch sees no CUDA device; the CPU tests exercise the GPU's Adam
kernel (fused, skipping a non-finite step on the device) on the CPU, where torch has it too.
"""

import math

import numpy as np
import pytest
import torch

from mlff_distiller import cli
from mlff_distiller.distill import train as train_module
from mlff_distiller.distill.dataset import GraphDataset
from mlff_distiller.distill.metrics import predict
from mlff_distiller.distill.train import (
    TrainConfig,
    build_model,
    read_checkpoint,
    train,
    train_from_file,
    validation_metrics,
)
from mlff_distiller.model.io import load_model
from mlff_distiller.model.painn import PaiNNConfig

from training_cases import ELEMENTS, SMALL, datasets, quiet, resume_training, train_until_interrupted, with_a_nan_force

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="tests the refusal where torch sees no CUDA")


def tensors(value):
    """Every tensor in nested dicts and lists."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from tensors(item)


@pytest.fixture
def gpu_kernel(monkeypatch):
    """Adam's fused kernel, which the GPU gets, on the CPU: switch it on or off per run."""
    choice = {"fused": True}
    monkeypatch.setattr(train_module, "uses_fused_adam", lambda device: choice["fused"])
    return choice


# ------------------------------------------------------------------------------------------- CPU
def test_an_unknown_device_name_is_refused():
    with pytest.raises(ValueError, match="unknown device 'gpu': use cpu, cuda or cuda:N"):
        TrainConfig(device="gpu")
    with pytest.raises(ValueError, match="unknown device 'cuda:x'"):
        TrainConfig(device="cuda:x")


@no_cuda
def test_cuda_without_cuda_fails_at_once_and_names_the_fix(structures, tmp_path, capsys):
    train_set, validation_set, training = datasets(structures, torch.float32)
    model = build_model(SMALL, training)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"^--device cuda: torch sees no CUDA device .*; use --device cpu"):
        train(model, train_set, validation_set, TrainConfig(epochs=1, device="cuda"), progress=False, log=quiet)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # the command refuses before it reads anything: the data file does not even exist
    output = tmp_path / "m.pt"
    assert cli.main(["train", str(tmp_path / "absent.extxyz"), "-o", str(output), "--device", "cuda:1"]) == 2
    error = capsys.readouterr().err
    assert "--device cuda:1: torch sees no CUDA device" in error and "use --device cpu" in error
    assert "absent.extxyz" not in error and not output.exists()


def test_non_finite_batch_is_skipped_on_the_device_by_the_fused_kernel(structures, gpu_kernel):
    """The GPU's skip (the flag goes to the fused kernel, no host read) gives what the CPU's host
    check gives: the same weights, and the skipped batch counted."""
    broken = with_a_nan_force(structures)
    train_set, validation_set, training = datasets(broken, torch.float64)
    config = TrainConfig(epochs=2, batch_size=4, dtype="float64")
    results = {}
    for fused in (True, False):
        gpu_kernel["fused"] = fused
        model = build_model(SMALL, [a for a in training if a is not broken[0]], seed=0, dtype=torch.float64)
        state = train(model, train_set, validation_set, config, progress=False, log=quiet)
        assert [h["train"]["skipped_batches"] for h in state.history] == [1, 1]
        results[fused] = model.state_dict()
    for name, value in results[True].items():
        assert torch.isfinite(value).all(), name
        assert torch.allclose(value, results[False][name], rtol=1e-9, atol=1e-12), name


@pytest.mark.parametrize("first, then", [(True, False), (False, True)], ids=["gpu-kernel-to-cpu", "cpu-to-gpu-kernel"])
def test_checkpoint_resumes_with_the_other_adam_kernel(structures, tmp_path, gpu_kernel, first, then):
    """A checkpoint written with one device's Adam kernel continues with the other's (what a
    resume on the other device does): the run goes on from the moments and steps it saved, and
    the kernel is the resuming run's."""
    train_set, validation_set, training = datasets(structures, torch.float64)
    config = TrainConfig(epochs=4, batch_size=4, learning_rate=3e-3, dtype="float64")
    gpu_kernel["fused"] = False
    straight = build_model(SMALL, training, seed=0, dtype=torch.float64)
    train(straight, train_set, validation_set, config, progress=False, log=quiet)

    checkpoint = tmp_path / "run.ckpt"
    gpu_kernel["fused"] = first
    train_until_interrupted(
        build_model(SMALL, training, seed=0, dtype=torch.float64), train_set, validation_set, config, checkpoint, 2
    )
    assert read_checkpoint(checkpoint)["optimizer"]["param_groups"][0]["fused"] == (True if first else None)
    gpu_kernel["fused"] = then
    resumed = build_model(SMALL, training, seed=0, dtype=torch.float64)
    state = train(
        resumed, train_set, validation_set, config, checkpoint=checkpoint, resume=True, progress=False, log=quiet
    )
    assert [entry["epoch"] for entry in state.history] == [1, 2, 3, 4]
    saved = read_checkpoint(checkpoint)["optimizer"]
    assert saved["param_groups"][0]["fused"] == (True if then else None)
    assert {int(s["step"]) for s in saved["state"].values()} == {4 * math.ceil(len(train_set) / 4)}
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12), name


def test_checkpoint_holds_cpu_tensors_and_a_run_from_another_device_resumes_here(structures, tmp_path):
    """Round trip: every tensor of a checkpoint is on the CPU (it loads without map_location), and
    one that says it was written on cuda continues here on the CPU, saying so, to the same weights
    as one uninterrupted run."""
    train_set, validation_set, training = datasets(structures, torch.float64)
    config = TrainConfig(epochs=3, batch_size=8, dtype="float64")
    straight = build_model(SMALL, training, seed=0, dtype=torch.float64)
    train(straight, train_set, validation_set, config, progress=False, log=quiet)

    checkpoint = tmp_path / "run.ckpt"
    train_until_interrupted(
        build_model(SMALL, training, seed=0, dtype=torch.float64), train_set, validation_set, config, checkpoint, 2
    )
    payload = torch.load(checkpoint, weights_only=True)
    found = list(tensors(payload))
    assert len(found) > 20 and all(t.device.type == "cpu" for t in found)
    payload["train_config"]["device"] = "cuda"
    torch.save(payload, checkpoint)

    resumed = build_model(SMALL, training, seed=0, dtype=torch.float64)
    state, messages = resume_training(resumed, train_set, validation_set, config, checkpoint)
    assert messages[0] == f"note: device is 'cpu' now, 'cuda' in checkpoint {checkpoint}; continuing with 'cpu'"
    assert [entry["epoch"] for entry in state.history] == [1, 2, 3]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_checkpoint_from_before_the_device_setting_resumes(structures, tmp_path):
    train_set, validation_set, training = datasets(structures, torch.float32)
    config = TrainConfig(epochs=2, batch_size=8)
    checkpoint = tmp_path / "run.ckpt"
    train_until_interrupted(build_model(SMALL, training), train_set, validation_set, config, checkpoint, 1)
    payload = torch.load(checkpoint, weights_only=True)
    del payload["train_config"]["device"]
    torch.save(payload, checkpoint)
    state, messages = resume_training(build_model(SMALL, training), train_set, validation_set, config, checkpoint)
    assert messages[0].startswith("resumed from") and state.epoch == 2


def test_a_data_set_moves_once_and_keeps_its_batches(structures):
    train_set, _, _ = datasets(structures, torch.float32)
    assert train_set.device == torch.device("cpu") and train_set.to("cpu") is train_set
    moved = train_set.to(torch.device("meta"))  # a device without data: only where tensors live changes
    assert moved is not train_set and moved.structures is train_set.structures
    assert train_set.device.type == "cpu" and moved.device.type == "meta"
    a, b = train_set.batches(5)[1], moved.batches(5)[1]
    assert b.graph.r_ij.device.type == "meta" and b.energy.dtype == a.energy.dtype
    assert b.graph.edge_i.shape == a.graph.edge_i.shape and b.n_structures == a.n_structures == 5


# ------------------------------------------------------------------------------------------- GPU
@cuda
def test_two_epochs_on_cuda_learn_and_the_model_file_loads_on_the_cpu(data_file, structures, tmp_path):
    output = tmp_path / "student.pt"
    config = TrainConfig(epochs=2, batch_size=4, learning_rate=5e-3, warmup_epochs=0.5, device="cuda")
    model, state = train_from_file(
        data_file,
        output,
        PaiNNConfig(**SMALL.to_dict()),
        config,
        validation_fraction=0.25,
        group_key="molecule",
        checkpoint=tmp_path / "run.ckpt",
        progress=False,
        log=quiet,
    )
    assert model.device.type == "cuda"
    (first, second), (first_val, second_val) = (
        [entry[part]["loss"] for entry in state.history] for part in ("train", "validation")
    )
    # on the CPU (same seed): 22.3 -> 16.8 in training, 16.6 -> 15.1 in validation
    assert second < 0.9 * first and second_val < first_val, state.history
    assert all(t.device.type == "cpu" for t in tensors(torch.load(tmp_path / "run.ckpt", weights_only=True)))

    on_cpu = load_model(output, dtype=torch.float32)
    assert on_cpu.device.type == "cpu"
    cpu_set = GraphDataset(structures, ELEMENTS, SMALL.cutoff, torch.float32)
    batch = cpu_set.batches(len(structures))[0]
    with torch.no_grad():
        energy_gpu, forces_gpu = predict(model, batch.to("cuda"))
        energy_cpu, forces_cpu = predict(on_cpu, batch)
    np.testing.assert_allclose(energy_gpu.cpu().numpy(), energy_cpu.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(forces_gpu.cpu().numpy(), forces_cpu.numpy(), rtol=1e-4, atol=1e-5)
    assert load_model(output).metadata["training"]["config"]["device"] == "cuda"


@cuda
def test_a_cuda_checkpoint_resumes_on_the_cpu_and_back(structures, tmp_path):
    train_set, validation_set, training = datasets(structures, torch.float64)
    checkpoint = tmp_path / "run.ckpt"
    history = []
    for epochs, device in ((1, "cuda"), (2, "cpu"), (3, "cuda")):
        config = TrainConfig(epochs=epochs, batch_size=4, dtype="float64", device=device)
        model = build_model(SMALL, training, seed=0, dtype=torch.float64)
        state, messages = resume_training(model, train_set, validation_set, config, checkpoint)
        assert model.device.type == device
        if epochs > 1:
            assert any(f"device is '{device}' now" in m for m in messages), messages
        history = state.history
    assert [entry["epoch"] for entry in history] == [1, 2, 3]
    assert all(np.isfinite(entry["validation"]["loss"]) for entry in history)
    assert all(t.device.type == "cpu" for t in tensors(torch.load(checkpoint, weights_only=True)))


@cuda
def test_an_epoch_on_cuda_waits_for_the_device_only_to_read_its_metrics(structures, monkeypatch):
    """Within an epoch nothing reads the GPU: CUDA's sync check raises on any wait, except in
    the one read of the running metrics at its end."""
    train_set, validation_set, training = datasets(structures, torch.float32)
    config = TrainConfig(epochs=2, batch_size=4, device="cuda")
    model = build_model(SMALL, training)
    train(
        model, train_set, validation_set, TrainConfig(epochs=1, batch_size=4, device="cuda"), progress=False, log=quiet
    )  # warm-up: first kernels, allocations
    device = torch.device("cuda", torch.cuda.current_device())
    optimizer = train_module.make_optimizer(model, config, device)
    scheduler = train_module.make_scheduler(optimizer, config, 5)
    read = train_module.RunningMetrics.summary

    def summary_without_check(self):
        torch.cuda.set_sync_debug_mode(0)
        return read(self)

    monkeypatch.setattr(train_module.RunningMetrics, "summary", summary_without_check)
    on_device = train_set.to(device)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        metrics = train_module.train_one_epoch(model, optimizer, scheduler, on_device, config, 1, progress=False)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert np.isfinite(metrics["loss"]) and metrics["skipped_batches"] == 0
    assert validation_metrics(model, validation_set, config)["force_mae_meV_per_A"] > 0
