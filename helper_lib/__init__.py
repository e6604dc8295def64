"""helper_lib: the shared, tested library behind the STAT 453 L17 VAE notebooks.

The top level is the lecture's library, the code behind L17.1-L17.5 that a notebook imports:

* :mod:`helper_lib.data`: MNIST / binarized MNIST / Fashion-MNIST loaders (``get_dataloaders``).
* :mod:`helper_lib.models`: ``ConvAutoencoder``, ``ConvVAE`` and ``MnistClassifier``.
* :mod:`helper_lib.losses`: ``kl_divergence``, ``reconstruction_loss``, ``vae_loss``.
* :mod:`helper_lib.train`: ``train_step`` (one batch), and the loops that run it:
  ``train_vae``, ``train_autoencoder``, ``train_classifier``, ``train_model``. Beside the loop:
  :mod:`helper_lib.resume` (resuming a run) and :mod:`helper_lib.progress` (its progress bar).
* :mod:`helper_lib.evaluate`: split losses, importance-weighted log-likelihood, active units.
* :mod:`helper_lib.plotting`: the lectures' figures (each returns a ``matplotlib`` Figure), and
  ``finish_figure``, which every figure function ends with.
* :mod:`helper_lib.checkpoints` (``save_checkpoint``, ``load_model``, ``load_pretrained``),
  :mod:`helper_lib.history` (``History``, ``Snapshots``), :mod:`helper_lib.model_types` (the
  three types of model), :mod:`helper_lib.interactive` (the live latent explorer) and
  :mod:`helper_lib.utils` (``set_seed``, ``get_device``, ``deterministic``, ``smoke_mode``).

``python -m helper_lib`` runs :mod:`helper_lib.__main__`, which hands over to the command line
(:mod:`helper_lib.tools.cli`).

The course's machinery lives in subpackages named for their job:

* :mod:`helper_lib.fast`: the speed machinery (fused layers, bf16 or fp32, the allocator).
* :mod:`helper_lib.assets`: what the course ships and where it comes from (the version and
  address, verified downloads, the datasets' files, the pretrained models' files).
* :mod:`helper_lib.analysis`: the analysis behind notebooks 06-09 (the shipped models by name,
  reports, sample quality, posteriors, latent arithmetic, the training film, their figures).
* :mod:`helper_lib.tools`: the course's tools for instructors and graders (the command line, the
  site and its handouts, the exercises' checks, the grader and its sandbox, the doctor).

The rule, which import-linter checks in the test run (``pyproject.toml``, and
``docs/architecture.md`` with a diagram): a module imports only from its own layer and the
layers below it::

    tools  >  analysis  >  the lecture's library  >  assets | fast  >  utils

The lecture's library never imports the analysis or the tools; ``assets`` and ``fast`` do not
import each other.
"""

import os

import torch

from .assets.datasets import DatasetNotFoundError
from .assets.project import VERSION
from .checkpoints import CheckpointError, load_model, save_checkpoint
from .data import get_dataloaders
from .history import History
from .losses import kl_divergence, reconstruction_loss, vae_loss
from .models import ConvAutoencoder, ConvVAE, count_parameters
from .train import train_autoencoder, train_vae
from .utils import CUBLAS_DETERMINISTIC, CUBLAS_ENV_VAR, deterministic, get_device, set_seed

__version__ = VERSION

# The one thing importing helper_lib does to the process: deterministic CUDA matmuls need this
# cuBLAS setting, and cuBLAS reads it only when it starts (see helper_lib.utils.deterministic).
if not torch.cuda.is_initialized():
    os.environ.setdefault(CUBLAS_ENV_VAR, CUBLAS_DETERMINISTIC)

__all__ = [
    "CheckpointError",
    "ConvAutoencoder",
    "ConvVAE",
    "DatasetNotFoundError",
    "History",
    "count_parameters",
    "deterministic",
    "get_dataloaders",
    "get_device",
    "kl_divergence",
    "load_model",
    "reconstruction_loss",
    "save_checkpoint",
    "set_seed",
    "train_autoencoder",
    "train_vae",
    "vae_loss",
]
