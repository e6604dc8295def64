"""helper_lib: the shared, tested library behind the STAT 453 L17 VAE notebooks.

Modules, one job each:

* :mod:`helper_lib.data`: MNIST / Fashion-MNIST loaders (``get_dataloaders``).
* :mod:`helper_lib.models`: ``ConvAutoencoder`` and ``ConvVAE``.
* :mod:`helper_lib.layers`: CPU-fast drop-in layers the models are built from (same results).
* :mod:`helper_lib.losses`: ``kl_divergence``, ``reconstruction_loss``, ``vae_loss``.
* :mod:`helper_lib.train`: ``train_vae``, ``train_autoencoder`` and their ``History``.
* :mod:`helper_lib.evaluate`: split losses, importance-weighted log-likelihood, active units.
* :mod:`helper_lib.plotting`: figures (every function returns a ``matplotlib`` Figure).
* :mod:`helper_lib.checkpoints`: ``save_checkpoint``, ``load_model``, ``CheckpointError``.
* :mod:`helper_lib.utils`: ``set_seed``, ``get_device``, ``deterministic``, precision choice.
"""

from .checkpoints import CheckpointError, load_model, save_checkpoint
from .data import DatasetNotFoundError, get_dataloaders
from .losses import kl_divergence, reconstruction_loss, vae_loss
from .models import ConvAutoencoder, ConvVAE, count_parameters
from .project import VERSION
from .train import History, train_autoencoder, train_vae
from .utils import deterministic, get_device, set_seed

__version__ = VERSION

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
