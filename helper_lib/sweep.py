"""The models of notebook 07 ("measuring the lecture's claims"): what each one is, and how to
get it: load the shipped checkpoint, or train it (smoke mode, or when the file is missing).

Every model of ``SWEEP`` was trained with ``python -m helper_lib train --recipe fast`` (one-cycle,
peak lr 6e-3, 12 epochs, batch 256, seed 123); the exact commands are in
``data/pretrained/make_pretrained.sh`` and in each checkpoint's metadata.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from .checkpoints import load_pretrained
from .models import ConvAutoencoder, ConvVAE, MnistClassifier
from .report import evaluation_report
from .train import RECIPES, train_autoencoder, train_classifier, train_vae
from .utils import get_device, set_seed

__all__ = ["Spec", "SWEEP", "LECTURE_VAE", "FASHION_VAE", "LATENT_SIZES", "AE_LATENT_SIZES",
           "BETAS", "get_model", "get_classifier", "get_report"]


@dataclass(frozen=True)
class Spec:
    """One model of the sweep: a VAE (``model="vae"``) or an autoencoder (``"ae"``)."""

    name: str  # the checkpoint's name in data/pretrained/
    model: str
    latent_dim: int
    kind: str = "mse"
    beta: float = 1.0

    @property
    def label(self) -> str:
        """A short label for tables and plots, e.g. ``"VAE D=16 β=3"``."""
        text = f"{self.model.upper()} D={self.latent_dim}"
        if self.kind != "mse":
            text += f" {self.kind.upper()}"
        if self.beta != 1.0:
            text += f" β={self.beta:g}"
        return text


LATENT_SIZES = (2, 4, 8, 16, 32)
AE_LATENT_SIZES = (2, 8, 32)
BETAS = (0.1, 0.3, 1.0, 3.0, 10.0, 784.0)


def _beta_name(beta: float) -> str:
    return f"sweep_vae_d16_beta{beta:g}".replace(".", "p")


#: The lecture's VAE (notebook 05's settings, 50 epochs at a constant rate), as notebooks 06 and 09
#: use it; in smoke mode ``get_model`` trains a stand-in with the fast recipe.
LECTURE_VAE = Spec("conv_vae_mnist", "vae", 2)

#: Notebook 09's Fashion-MNIST VAE (trained on fashion-mnist; pass its train loader).
FASHION_VAE = Spec("fashion_vae_d16", "vae", 16)

SWEEP: dict[str, Spec] = {
    **{f"vae_d{d}": Spec("conv_vae_mnist_fast" if d == 2 else f"sweep_vae_d{d}", "vae", d)
       for d in LATENT_SIZES},
    **{f"ae_d{d}": Spec(f"sweep_ae_d{d}", "ae", d) for d in AE_LATENT_SIZES},
    **{f"vae_bce_d{d}": Spec(f"sweep_vae_bce_d{d}", "vae", d, kind="bce") for d in (2, 16)},
    **{f"vae_d16_beta{b:g}": Spec(_beta_name(b), "vae", 16, beta=b) for b in BETAS if b != 1},
}


def _fast(epochs: int | None) -> dict[str, Any]:
    recipe = dict(RECIPES["fast"])
    if epochs is not None:
        recipe["epochs"] = epochs
    return recipe


def get_model(spec: Spec, train_loader: DataLoader, smoke: bool = False,
              device: str | torch.device = "auto", epochs: int | None = None,
              seed: int = 123) -> nn.Module:
    """The shipped model ``spec.name`` in ``eval()`` mode, or (smoke mode, or no file) one
    trained here with the fast recipe (``epochs`` overrides its 12), on ``train_loader``."""
    device = get_device(device)
    if not smoke:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = load_pretrained(spec.name, device)
        if model is not None:
            return model
    recipe = _fast(epochs)
    set_seed(seed)
    if spec.model == "vae":
        model = ConvVAE(latent_dim=spec.latent_dim)
        train_vae(model, train_loader, recipe["epochs"], lr=recipe["lr"],
                  schedule=recipe["schedule"], kind=spec.kind, beta=spec.beta, device=device,
                  seed=seed, progress=False)
    else:
        model = ConvAutoencoder(latent_dim=spec.latent_dim)
        train_autoencoder(model, train_loader, recipe["epochs"], lr=recipe["lr"],
                          schedule=recipe["schedule"], device=device, seed=seed,
                          progress=False)
    return model.eval()


def get_classifier(train_loader: DataLoader, smoke: bool = False,
                   device: str | torch.device = "auto", epochs: int | None = None,
                   seed: int = 123, name: str = "classifier_mnist",
                   feature_dim: int = 128) -> nn.Module:
    """The shipped classifier ``name`` (``classifier_mnist``: 99.2 % on the test set;
    ``classifier_fashion``, ``feature_dim=32``: 90.9 % on Fashion-MNIST), or one trained here
    on ``train_loader``."""
    device = get_device(device)
    if not smoke:
        model = load_pretrained(name, device)
        if model is not None:
            return model
    set_seed(seed)
    model = MnistClassifier(feature_dim=feature_dim)
    train_classifier(model, train_loader, epochs or 4, lr=2e-3, schedule="onecycle",
                     device=device, seed=seed, progress=False)
    return model.eval()


def get_report(model: nn.Module, spec: Spec, test_loader: DataLoader,
               classifier: nn.Module | None = None, train_loader: DataLoader | None = None,
               k: int = 100, iw_images: int | None = 1000, max_images: int | None = None,
               samples: int = 10_000) -> dict[str, Any]:
    """The model's test-set report: the one stored in its checkpoint by
    ``python -m helper_lib evaluate --save`` when there is one (full mode: the numbers the
    shipped model gives), else measured now with these settings (smoke mode), the
    log-likelihood on ``iw_images`` test images drawn at random (seed 0), as stored."""
    stored = getattr(model, "checkpoint_metadata", {}).get("evaluation")
    if stored is not None and "reconstruction_at_mean" in stored:
        return stored
    return evaluation_report(model, test_loader, kind=spec.kind, k=k, iw_images=iw_images,
                             iw_random=True, max_images=max_images, classifier=classifier,
                             train_loader=train_loader, samples=samples)
