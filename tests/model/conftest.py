"""Fixtures of the model tests; the cases themselves live in model_cases.py."""

import pytest
import torch

from model_cases import make_model


@pytest.fixture
def model():
    return make_model()


@pytest.fixture(autouse=True)
def float64_by_default():
    """Derivative checks run in float64 from a fixed random state; restore the default dtype for
    the other test folders."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(1234)
    yield
    torch.set_default_dtype(previous)
