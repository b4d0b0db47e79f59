"""Training: it learns, it trains what LAMMPS runs, it resumes, and it fails clearly."""

import dataclasses

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mlff_distiller import cli
from mlff_distiller.distill.dataset import GraphDataset, fit_energy_shifts, read_structures, split_structures
from mlff_distiller.distill.metrics import predict
from mlff_distiller.distill.train import (
    TrainConfig,
    build_model,
    data_fingerprint,
    load_checkpoint,
    make_scheduler,
    model_config_from_args,
    prior_energies,
    train,
    validation_metrics,
)
from mlff_distiller.model.io import load_model
from mlff_distiller.model.painn import PaiNN, PaiNNConfig

from training_cases import (
    ELEMENTS,
    SMALL,
    SMALL_TRAIN_OPTIONS,
    datasets,
    quiet,
    resume_training,
    with_a_nan_force,
    train_until_interrupted,
)


def test_a_few_epochs_reduce_the_loss(structures):
    train_set, validation_set, training = datasets(structures, torch.float32)
    config = TrainConfig(epochs=8, batch_size=4, learning_rate=5e-3, warmup_epochs=0.5, dtype="float32")
    model = build_model(SMALL, training, seed=0, dtype=torch.float32)
    before = validation_metrics(model, train_set, config)["loss"]
    state = train(model, train_set, validation_set, config, progress=False, log=quiet)
    after = validation_metrics(model, train_set, config)["loss"]
    assert state.epoch == 8 and len(state.history) == 8
    assert after < 0.5 * before


def test_a_non_finite_batch_is_skipped_not_learned(structures):
    """A label that is NaN gives a NaN loss: that batch takes no step, the weights stay finite,
    and the epoch says how many batches it skipped."""
    broken = with_a_nan_force(structures)
    train_set, validation_set, training = datasets(broken, torch.float32)
    config = TrainConfig(epochs=2, batch_size=4, dtype="float32")
    model = build_model(SMALL, [a for a in training if a is not broken[0]], seed=0, dtype=torch.float32)
    state = train(model, train_set, validation_set, config, progress=False, log=quiet)
    assert all(h["train"]["skipped_batches"] == 1 for h in state.history)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def force_loss_parameter_gradients(model, batch, method):
    """d/dtheta of mean squared force error, the forces from `method` ([n_parameters])."""
    parameters = list(model.parameters())
    _, forces = predict(model, batch, method=method)
    # allow_unused: the readout's last bias shifts energies only and gets no force gradient
    grads = torch.autograd.grad(((forces - batch.forces) ** 2).mean(), parameters, allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).ravel() for p, g in zip(parameters, grads)])


def test_analytic_force_loss_gradient_equals_autograd_double_backward(structures):
    """The weights are trained through the analytic backward that LAMMPS runs, and that gives the
    same parameter gradient as differentiating autograd's forces (double backward)."""
    train_set, _, training = datasets(structures, torch.float64)
    model = build_model(SMALL, training, seed=1, dtype=torch.float64).requires_grad_(True)
    batch = train_set.batches(8)[0]
    analytic = force_loss_parameter_gradients(model, batch, "analytic")
    autograd = force_loss_parameter_gradients(model, batch, "autograd")
    assert analytic.abs().max() > 0
    relative = (analytic - autograd).norm() / autograd.norm()
    assert relative < 1e-8, relative
    assert torch.allclose(analytic, autograd, rtol=1e-8, atol=1e-12 * autograd.abs().max())


@pytest.mark.parametrize("schedule", ["cosine", "plateau"])
def test_resumed_training_continues_at_the_right_epoch_and_matches_one_run(structures, tmp_path, schedule):
    train_set, validation_set, training = datasets(structures, torch.float64)
    config = TrainConfig(
        epochs=4, batch_size=4, learning_rate=3e-3, schedule=schedule, plateau_patience=0, dtype="float64"
    )

    straight = build_model(SMALL, training, seed=0, dtype=torch.float64)
    train(straight, train_set, validation_set, config, checkpoint=tmp_path / "a.ckpt", progress=False, log=quiet)

    checkpoint = tmp_path / "b.ckpt"
    interrupted = build_model(SMALL, training, seed=0, dtype=torch.float64)
    train_until_interrupted(interrupted, train_set, validation_set, config, checkpoint, 2)
    resumed = build_model(SMALL, training, seed=0, dtype=torch.float64)
    state, messages = resume_training(resumed, train_set, validation_set, config, checkpoint)

    assert messages[0].startswith("resumed from") and "after epoch 2" in messages[0]
    assert [entry["epoch"] for entry in state.history] == [1, 2, 3, 4]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12), name


def test_corrupt_checkpoint_gives_a_clear_error(structures, tmp_path):
    train_set, validation_set, training = datasets(structures, torch.float32)
    config = TrainConfig(epochs=1, batch_size=8)
    model = build_model(SMALL, training)
    checkpoint = tmp_path / "run.ckpt"
    train(model, train_set, validation_set, config, checkpoint=checkpoint, progress=False, log=quiet)
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # a write cut short

    optimizer = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="damaged.*delete"):
        load_checkpoint(
            checkpoint,
            model,
            optimizer,
            make_scheduler(optimizer, config, 3),
            config,
            data_fingerprint(train_set, validation_set),
        )
    with pytest.raises(ValueError, match=f"checkpoint {checkpoint} is damaged"):
        train(model, train_set, validation_set, config, checkpoint=checkpoint, resume=True, log=quiet)


def first_run(structures, tmp_path, config=None):
    """A finished run that left a checkpoint: (train set, validation set, training structures,
    its TrainConfig, the checkpoint path)."""
    train_set, validation_set, training = datasets(structures, torch.float32)
    config = config or TrainConfig(epochs=1, batch_size=8)
    checkpoint = tmp_path / "run.ckpt"
    train(
        build_model(SMALL, training),
        train_set,
        validation_set,
        config,
        checkpoint=checkpoint,
        progress=False,
        log=quiet,
    )
    return train_set, validation_set, training, config, checkpoint


def test_checkpoint_of_another_architecture_is_refused(structures, tmp_path):
    train_set, validation_set, training, config, checkpoint = first_run(structures, tmp_path)
    wider = PaiNNConfig(**{**SMALL.to_dict(), "n_features": 32})
    with pytest.raises(ValueError, match="is for the painn model"):
        train(
            build_model(wider, training),
            train_set,
            validation_set,
            config,
            checkpoint=checkpoint,
            resume=True,
            log=quiet,
        )


def test_existing_checkpoint_is_not_overwritten_by_a_fresh_run(structures, tmp_path):
    train_set, validation_set, training, config, checkpoint = first_run(structures, tmp_path)
    written = checkpoint.read_bytes()
    with pytest.raises(ValueError, match="run.ckpt already exists.*add --resume.*delete .*run.ckpt"):
        train(
            build_model(SMALL, training),
            train_set,
            validation_set,
            config,
            checkpoint=checkpoint,
            progress=False,
            log=quiet,
        )
    assert checkpoint.read_bytes() == written


def test_resume_without_a_checkpoint_is_refused(structures):
    train_set, validation_set, training = datasets(structures, torch.float32)
    with pytest.raises(ValueError, match="--resume .* none was given: add --checkpoint FILE"):
        train(
            build_model(SMALL, training),
            train_set,
            validation_set,
            TrainConfig(epochs=1),
            resume=True,
            progress=False,
            log=quiet,
        )


def test_resume_with_a_checkpoint_not_written_yet_says_it_starts_from_scratch(structures, tmp_path):
    train_set, validation_set, training = datasets(structures, torch.float32)
    state, messages = resume_training(
        build_model(SMALL, training),
        train_set,
        validation_set,
        TrainConfig(epochs=1, batch_size=8),
        tmp_path / "new.ckpt",
    )
    assert "no checkpoint" in messages[0] and "starts from scratch" in messages[0]
    assert state.epoch == 1 and (tmp_path / "new.ckpt").is_file()


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(batch_size=4), "batch_size 8 then, 4 now"),
        (dict(learning_rate=1e-2), "learning_rate 0.003 then, 0.01 now"),
        (dict(seed=1, energy_weight=1.0), "energy_weight 10.0 then, 1.0 now, seed 0 then, 1 now"),
    ],
)
def test_resume_with_other_settings_is_refused(structures, tmp_path, change, message):
    train_set, validation_set, training, config, checkpoint = first_run(
        structures, tmp_path, TrainConfig(epochs=2, batch_size=8, learning_rate=3e-3)
    )
    written = checkpoint.read_bytes()
    other = TrainConfig(**{**config.__dict__, **change})
    with pytest.raises(
        ValueError, match=f"other settings: {message}. Resume with the checkpoint's settings, or delete"
    ):
        train(
            build_model(SMALL, training),
            train_set,
            validation_set,
            other,
            checkpoint=checkpoint,
            resume=True,
            progress=False,
            log=quiet,
        )
    assert checkpoint.read_bytes() == written


def relabelled(atoms, energy_shift):
    copy = atoms.copy()
    copy.calc = SinglePointCalculator(
        copy, energy=atoms.get_potential_energy() + energy_shift, forces=atoms.get_forces()
    )
    return copy


@pytest.mark.parametrize("other_data", ["another split", "one energy changed"])
def test_resume_on_other_data_is_refused(structures, tmp_path, other_data):
    train_set, validation_set, training, config, checkpoint = first_run(structures, tmp_path)
    if other_data == "another split":
        validation, training = split_structures(structures, [0.25], seed=1)
    else:
        training = [relabelled(training[0], 1e-3), *training[1:]]
        validation = validation_set.structures
    with pytest.raises(ValueError, match="written while training on other data .*Resume with the same data"):
        train(
            build_model(SMALL, training),
            GraphDataset(training, ELEMENTS, SMALL.cutoff),
            GraphDataset(validation, ELEMENTS, SMALL.cutoff),
            config,
            checkpoint=checkpoint,
            resume=True,
            progress=False,
            log=quiet,
        )


def test_resume_with_more_epochs_continues_and_says_what_changes(structures, tmp_path):
    train_set, validation_set, training = datasets(structures, torch.float32)
    checkpoint = tmp_path / "run.ckpt"
    train(
        build_model(SMALL, training),
        train_set,
        validation_set,
        TrainConfig(epochs=2, batch_size=8),
        checkpoint=checkpoint,
        progress=False,
        log=quiet,
    )
    state, messages = resume_training(
        build_model(SMALL, training), train_set, validation_set, TrainConfig(epochs=3, batch_size=8), checkpoint
    )
    assert messages[0] == f"note: epochs is 3 now, 2 in checkpoint {checkpoint}; continuing with 3"
    assert "cosine learning-rate schedule is recomputed" in messages[1]
    assert messages[2].startswith("resumed from") and "after epoch 2" in messages[2]
    assert [entry["epoch"] for entry in state.history] == [1, 2, 3]


def test_data_set_without_forces_is_refused(tmp_path, structures):
    path = tmp_path / "unlabelled.extxyz"
    ase.io.write(path, [structures[0], Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])])
    with pytest.raises(ValueError, match="structure 1 of .*unlabelled.extxyz has no energy and no forces"):
        read_structures(path)
    energy_only = structures[0].copy()
    energy_only.calc = SinglePointCalculator(energy_only, energy=1.0)
    with pytest.raises(ValueError, match="structure 0 of the data set has no forces"):
        GraphDataset([energy_only], ELEMENTS, 4.0)


def test_energy_shifts_recover_atomic_energies():
    shifts = {"H": -13.5, "C": -1030.0, "O": -2040.0}
    structures = []
    for formula in ("H2O", "CH4", "CO2", "H2", "C2H6O"):
        atoms = Atoms(formula)
        atoms.calc = SinglePointCalculator(atoms, energy=sum(shifts[s] for s in atoms.get_chemical_symbols()))
        structures.append(atoms)
    fitted = fit_energy_shifts(structures, ELEMENTS)
    np.testing.assert_allclose(fitted, [-13.5, -1030.0, 0.0, -2040.0], atol=1e-8)  # N absent: 0


def test_with_repulsion_the_shifts_fit_the_teacher_minus_the_repulsion():
    """Labels that are atomic energies plus the repulsion of squeezed molecules: the fitted shifts
    are the atomic energies, so the network starts from the teacher minus the repulsion."""
    from ase.build import molecule

    config = PaiNNConfig(elements=ELEMENTS, n_features=8, n_layers=1, n_radial=4, cutoff=4.0, repulsion=True)
    shifts = {"H": -13.5, "C": -1030.0, "N": -1500.0, "O": -2040.0}
    structures = []
    for formula in ("H2O", "CH4", "NH3", "CH3OH", "CO2"):
        atoms = molecule(formula)
        atoms.positions *= 0.7  # bonds inside the repulsion's range
        structures.append(atoms)
    repulsion = prior_energies(PaiNN(config).double(), structures)
    assert (repulsion > 1.0).all()
    for atoms, extra in zip(structures, repulsion):
        energy = sum(shifts[s] for s in atoms.get_chemical_symbols()) + extra
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=np.zeros((len(atoms), 3)))
    model = build_model(config, structures, dtype=torch.float64)
    np.testing.assert_allclose(model.readout.shift.numpy(), list(shifts.values()), atol=1e-6)
    plain = fit_energy_shifts(structures, ELEMENTS)
    assert np.abs(plain - list(shifts.values())).max() > 0.1  # the repulsion mattered


def test_train_command_with_repulsion(data_file, tmp_path, capsys):
    output = tmp_path / "student.pt"
    code = cli.main(["train", str(data_file), "-o", str(output), *SMALL_TRAIN_OPTIONS, "--repulsion"])
    assert code == 0, capsys.readouterr().err
    model = load_model(output)
    assert model.config.repulsion and model.repulsion is not None


def command_student(*argv: str) -> PaiNNConfig:
    """The student a command's arguments ask for (``train ...`` or ``active-learn ...``)."""
    return model_config_from_args(cli.build_parser(argv[0]).parse_args(argv))


def test_train_and_active_learn_build_the_shipped_default_models_student_by_default():
    trained = command_student("train", "data.extxyz", "-o", "m.pt")
    assert command_student("active-learn", "--workdir", "al") == trained
    shipped = load_model("default").config
    # v1 has no repulsion, so where one would end does not describe it
    assert dataclasses.replace(trained, elements=shipped.elements, repulsion_reach=1.0) == shipped


def test_both_commands_take_the_repulsions_reach():
    assert command_student("train", "data.extxyz", "-o", "m.pt").repulsion_reach == 0.75
    for argv in (("train", "data.extxyz", "-o", "m.pt"), ("active-learn", "--workdir", "al")):
        assert command_student(*argv, "--repulsion", "--repulsion-reach", "0.6").repulsion_reach == 0.6


@pytest.mark.parametrize("flag, repulsion", [("--repulsion", True), ("--no-repulsion", False)])
def test_both_commands_take_the_repulsion_on_or_off(flag, repulsion):
    assert command_student("train", "data.extxyz", "-o", "m.pt", flag).repulsion is repulsion
    assert command_student("active-learn", "--workdir", "al", flag).repulsion is repulsion


def test_grouped_split_is_seeded_and_takes_from_every_group(structures):
    first = split_structures(structures, [0.2, 0.2], seed=3, group_key="molecule")
    again = split_structures(structures, [0.2, 0.2], seed=3, group_key="molecule")
    assert [[id(a) for a in part] for part in first] == [[id(a) for a in part] for part in again]
    assert sum(len(part) for part in first) == len(structures)
    for part in first[:2]:
        assert sorted({a.info["molecule"] for a in part}) == sorted({a.info["molecule"] for a in structures})


def test_train_command_writes_a_model_with_its_training_metadata(data_file, tmp_path, capsys):
    output = tmp_path / "student.pt"
    code = cli.main(
        [
            "train",
            str(data_file),
            "-o",
            str(output),
            *SMALL_TRAIN_OPTIONS,
            "--threads",
            "1",
            "--group-by",
            "molecule",
            "--checkpoint",
            str(tmp_path / "c.ckpt"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    model = load_model(output)
    assert model.elements == ["H", "C", "N", "O"]
    training = model.metadata["training"]
    assert training["data"] == "data.extxyz" and training["epochs_run"] == 2
    assert training["n_train"] + training["n_validation"] == 24
    assert "force_mae_meV_per_A" in training["validation"]


def test_train_command_refuses_to_overwrite_or_change_a_checkpoint(data_file, tmp_path, capsys):
    checkpoint = tmp_path / "c.ckpt"
    argv = [
        "train",
        str(data_file),
        "-o",
        str(tmp_path / "m.pt"),
        "--features",
        "16",
        "--layers",
        "1",
        "--radial",
        "8",
        "--epochs",
        "1",
        "--checkpoint",
        str(checkpoint),
    ]
    assert cli.main(argv) == 0
    written = checkpoint.read_bytes()
    capsys.readouterr()
    assert cli.main(argv) == 2
    assert "c.ckpt already exists" in capsys.readouterr().err
    assert cli.main([*argv, "--resume", "--lr", "0.01"]) == 2
    assert "learning_rate 0.003 then, 0.01 now" in capsys.readouterr().err
    assert checkpoint.read_bytes() == written


def test_train_command_refuses_resume_without_checkpoint(data_file, tmp_path, capsys):
    assert cli.main(["train", str(data_file), "-o", str(tmp_path / "m.pt"), "--resume"]) == 2
    assert "add --checkpoint FILE" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()


def test_train_command_reports_a_corrupt_checkpoint(data_file, tmp_path, capsys):
    checkpoint = tmp_path / "c.ckpt"
    checkpoint.write_bytes(b"not a checkpoint at all")
    code = cli.main(
        [
            "train",
            str(data_file),
            "-o",
            str(tmp_path / "m.pt"),
            "--features",
            "16",
            "--epochs",
            "1",
            "--checkpoint",
            str(checkpoint),
            "--resume",
        ]
    )
    assert code == 2
    assert "is damaged" in capsys.readouterr().err
