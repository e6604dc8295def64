"""Fixtures: real MNIST from $VAE_DATA_DIR (see README), small and fast."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from helper_lib.data import get_dataloaders


@pytest.fixture(scope="session")
def mnist_loaders() -> tuple[DataLoader, DataLoader | None, DataLoader]:
    """Real MNIST: 2,048 training images in batches of 64, and the full test split."""
    return get_dataloaders("mnist", batch_size=64, train_subset=2048, seed=0)


@pytest.fixture(scope="session")
def mnist_batch(mnist_loaders) -> torch.Tensor:
    """One real batch of 64 test images, ``[64, 1, 28, 28]``."""
    x, _ = next(iter(mnist_loaders[2]))
    return x
