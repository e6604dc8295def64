"""How a notebook gets a model of the registry (:mod:`helper_lib.analysis.registry`): load the
shipped checkpoint, or train it (smoke mode, or when the file is missing).

Every model of :data:`helper_lib.analysis.registry.SWEEP` was trained with ``python -m
helper_lib train --recipe fast`` (one-cycle, peak lr 6e-3, 12 epochs, batch 256, seed 123); the
exact commands are in ``data/pretrained/make_pretrained.sh`` and in each checkpoint's metadata.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..checkpoints import load_pretrained
from ..model_types import MODEL_TYPES
from ..train import RECIPES, train_model
from ..utils import get_device, set_seed
from .registry import PRETRAINED, Spec
from .report import evaluation_report

__all__ = ["get_model", "get_classifier", "get_report"]


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
    model = spec.build()
    loss = {"kind": spec.kind, "beta": spec.beta} if spec.model == "vae" else {}
    train_model(model, train_loader, recipe["epochs"], lr=recipe["lr"],
                schedule=recipe["schedule"], device=device, seed=seed, progress=False, **loss)
    return model.eval()


def get_classifier(train_loader: DataLoader, smoke: bool = False,
                   device: str | torch.device = "auto", epochs: int | None = None,
                   seed: int = 123, name: str = "classifier_mnist",
                   feature_dim: int | None = None) -> nn.Module:
    """The shipped classifier ``name`` (``classifier_mnist``: 99.2 % on the test set;
    ``classifier_fashion``, ``feature_dim=32``: 90.9 % on Fashion-MNIST), or one trained here
    on ``train_loader`` (as wide as the shipped one unless ``feature_dim`` says otherwise)."""
    device = get_device(device)
    if not smoke:
        model = load_pretrained(name, device)
        if model is not None:
            return model
    set_seed(seed)
    model = MODEL_TYPES["classifier"].build(feature_dim or PRETRAINED[name].size)
    train_model(model, train_loader, epochs or 4, lr=2e-3, schedule="onecycle", device=device,
                seed=seed, progress=False)
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
