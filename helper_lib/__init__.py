"""helper_lib: the shared, tested library behind the STAT 453 L17 VAE notebooks.

Modules, one job each. The lectures' own library:

* :mod:`helper_lib.data`: MNIST / binarized MNIST / Fashion-MNIST loaders (``get_dataloaders``).
* :mod:`helper_lib.models`: ``ConvAutoencoder``, ``ConvVAE`` and ``MnistClassifier``.
* :mod:`helper_lib.layers`: CPU-fast drop-in layers the models are built from (same results).
* :mod:`helper_lib.losses`: ``kl_divergence``, ``reconstruction_loss``, ``vae_loss``.
* :mod:`helper_lib.train`: ``train_step`` (one batch), and the loops that run it:
  ``train_vae``, ``train_autoencoder``, ``train_classifier``, ``train_model``.
* :mod:`helper_lib.registry`: the three model types and every shipped checkpoint, by name.
* :mod:`helper_lib.history`: ``History``, the record of a run (JSON, CSV).
* :mod:`helper_lib.evaluate`: split losses, importance-weighted log-likelihood, active units.
* :mod:`helper_lib.plotting`: the lectures' figures (each returns a ``matplotlib`` Figure), and
  ``finish_figure``, which every figure module ends with.
* :mod:`helper_lib.checkpoints`: ``save_checkpoint``, ``load_model``, ``load_pretrained``.
* :mod:`helper_lib.utils`: ``set_seed``, ``get_device``, ``deterministic``, precision choice.

Beyond the lectures (notebooks 06 and 07):

* :mod:`helper_lib.sample_quality`, :mod:`helper_lib.report`: judged samples, the test report.
* :mod:`helper_lib.sweep`, :mod:`helper_lib.sweep_plots`: a registry model loaded or trained
  here (smoke mode); notebook 07's figures.
* :mod:`helper_lib.posterior`, :mod:`helper_lib.attributes`, :mod:`helper_lib.latent_plots`:
  true and aggregate posteriors, latent arithmetic, and their figures.
* :mod:`helper_lib.film`, :mod:`helper_lib.film_plots`: the latent space forming: what training
  records and the file it is kept in; the animation.
* :mod:`helper_lib.interactive`: the live latent explorer (ipywidgets).

The course's machinery:

* :mod:`helper_lib.prose_numbers`: checks that every number in a notebook's prose is printed by
  one of its outputs (the site build and a slow test run it).
* :mod:`helper_lib.project`: the version and the repository's address, and links from them.
* :mod:`helper_lib.downloads`, :mod:`helper_lib.pretrained`: verified downloads; the
  pretrained files from the clone, the cache or the repository.
* :mod:`helper_lib.doctor`, :mod:`helper_lib.speed`: ``python -m helper_lib doctor``.
* :mod:`helper_lib.book`: the offline site, slides and handouts.
* :mod:`helper_lib.exercises`, :mod:`helper_lib.checks`: the exercises' checkable answers and
  ``check("NN.k", answer)``.
* :mod:`helper_lib.grading`, :mod:`helper_lib.grading_run`, :mod:`helper_lib.sandbox`:
  ``python -m helper_lib grade``, a class's notebooks run in a bubblewrap sandbox.
* :mod:`helper_lib.cli` (``python -m helper_lib``, :mod:`helper_lib.__main__`): the command line.
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
