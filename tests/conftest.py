"""Fixtures: real MNIST from $VAE_DATA_DIR (see README), small and fast."""

from __future__ import annotations

from pathlib import Path

import nbformat
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


#: Smoke-mode executions that tests/test_open_anywhere.py made in this session, by notebook stem
#: (each notebook alone, outside the clone): the slide-fit test measures those rather than
#: executing every notebook a second time.
SMOKE_EXECUTED: dict[str, nbformat.NotebookNode] = {}


@pytest.fixture(scope="session")
def smoke_executed_notebooks(tmp_path_factory) -> list[Path]:
    """Every ``notebooks/*.ipynb`` executed in smoke mode, written under its own name to a
    temporary folder, in name order: the executions of this session's acceptance test where
    there are any, else executed here (in notebooks/, as the site build does)."""
    from helper_lib.assets.project import REPO_ROOT as REPO
    from helper_lib.tools.book import execute_notebook

    folder = tmp_path_factory.mktemp("smoke_executed")
    paths = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert paths, "no notebooks in notebooks/"
    for path in paths:
        nb = SMOKE_EXECUTED.get(path.stem) or execute_notebook(path, smoke=True)
        nbformat.write(nb, folder / path.name)
    return [folder / path.name for path in paths]


@pytest.fixture(scope="session")
def smoke_site(smoke_executed_notebooks, tmp_path_factory) -> Path:
    """The course site built from those executions as they are (``execute=False``): one build
    for the browser tests (tests/test_site_browser.py) and the slide-fit test."""
    from helper_lib.tools.book import build_site

    out = tmp_path_factory.mktemp("smoke_site") / "site"
    build_site(out, notebooks=smoke_executed_notebooks, smoke=True, execute=False,
               log=lambda line: None)
    return out
