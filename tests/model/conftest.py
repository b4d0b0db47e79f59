"""Fixtures of the model tests; the cases themselves live in model_cases.py."""
import pytest
import torch

from model_cases import make_model


@pytest.fixture
def model():
    return make_model()


@pytest.fixture(autouse=True)
def float64_by_default():
    """Derivative checks run in float64; restore the default for the other test folders."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
