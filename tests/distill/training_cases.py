"""What the training tests share: a small model, its data sets, and a run interrupted as a kill would."""

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator

from mlff_distiller.distill.train import train
from mlff_distiller.distill.dataset import GraphDataset, split_structures
from mlff_distiller.model.painn import PaiNNConfig

ELEMENTS = ["H", "C", "N", "O"]
SMALL = PaiNNConfig(elements=ELEMENTS, n_features=16, n_layers=2, n_radial=8, cutoff=4.0)
SMALL_TRAIN_OPTIONS = "--features 16 --layers 1 --radial 8 --epochs 2 --batch-size 8".split()  # `train` in seconds


def datasets(structures, dtype):
    """(training set, validation set, training structures): a quarter of each molecule held out."""
    validation, training = split_structures(structures, [0.25], seed=0, group_key="molecule")
    return (
        GraphDataset(training, ELEMENTS, SMALL.cutoff, dtype),
        GraphDataset(validation, ELEMENTS, SMALL.cutoff, dtype),
        training,
    )


def quiet(_message):
    pass


class Interrupted(Exception):
    pass


def interrupt_after_epoch(n):
    """A training log that stops the run (as a kill would) once epoch ``n`` is reported."""

    def log(message):
        if message.startswith(f"epoch {n:4d}/"):
            raise Interrupted

    return log


def train_until_interrupted(model, train_set, validation_set, config, checkpoint, epochs: int) -> None:
    """Train into ``checkpoint`` and stop as a kill would once ``epochs`` epochs are saved there."""
    with pytest.raises(Interrupted):
        train(
            model,
            train_set,
            validation_set,
            config,
            checkpoint=checkpoint,
            progress=False,
            log=interrupt_after_epoch(epochs),
        )


def resume_training(model, train_set, validation_set, config, checkpoint):
    """Train ``model`` resuming from ``checkpoint``; returns (TrainState, the lines it logged)."""
    messages = []
    state = train(
        model,
        train_set,
        validation_set,
        config,
        checkpoint=checkpoint,
        resume=True,
        progress=False,
        log=messages.append,
    )
    return state, messages


def with_a_nan_force(structures):
    """Copies of the labelled ``structures`` whose first one has a NaN force component."""
    broken = [a.copy() for a in structures]
    for atoms, source in zip(broken, structures):
        atoms.calc = SinglePointCalculator(atoms, energy=source.get_potential_energy(), forces=source.get_forces())
    forces = broken[0].get_forces()
    forces[0, 0] = np.nan
    broken[0].calc = SinglePointCalculator(broken[0], energy=broken[0].get_potential_energy(), forces=forces)
    return broken
