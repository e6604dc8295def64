"""One test-set report for a trained model: what ``python -m helper_lib evaluate`` prints and
stores, and what notebook 07 tabulates.

For a VAE: the loss terms with standard errors, the importance-weighted log-likelihood with its
standard error, active units. For every generative model: the reconstruction error at the
posterior mean (or the autoencoder's code), and optionally a classifier's verdict on decoded
prior samples (:mod:`helper_lib.analysis.sample_quality`). For a classifier: loss and accuracy.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..evaluate import (
    active_units,
    evaluate_model,
    importance_weighted_log_likelihood,
    mean_vae_losses,
    reconstruct,
    standard_error,
    vae_losses_per_image,
)
from ..model_types import model_type

__all__ = ["evaluation_report", "reconstruction_at_mean"]


def reconstruction_at_mean(model: nn.Module, loader: DataLoader,
                           max_items: int | None = None) -> dict[str, float]:
    """Summed squared error per image of ``decode(embed(x))`` (no sampling): mean, standard
    error and image count. Comparable between VAEs and autoencoders."""
    per, seen = [], 0
    for x, *_ in loader:
        if max_items is not None:
            x = x[: max_items - seen]
            if len(x) == 0:
                break
        per.append((reconstruct(model, x) - x).square().flatten(1).sum(1).double())
        seen += len(x)
    values = torch.cat(per)
    return {"mean": values.mean().item(), "se": standard_error(values), "images": len(values)}


def evaluation_report(
    model: nn.Module,
    test_loader: DataLoader,
    kind: str = "mse",
    k: int = 100,
    iw_images: int | None = None,
    max_images: int | None = None,
    classifier: nn.Module | None = None,
    train_loader: DataLoader | None = None,
    samples: int = 10_000,
    progress: bool = False,
    reconstruction_weight: float = 1.0,
    iw_random: bool = False,
) -> dict[str, Any]:
    """Everything we measure about ``model`` on the test set, as plain Python values.

    Args:
        model: a ``ConvVAE``, ``ConvAutoencoder`` or ``MnistClassifier``.
        kind: the VAE's reconstruction loss (``"mse"`` or ``"bce"``).
        k: importance samples per image for the log-likelihood (0 skips it).
        iw_images: the log-likelihood on the first N test images only (default: as
            ``max_images``).
        max_images: every other measurement on the first N test images (default: all).
        classifier: if given, decoded prior samples are scored
            (:func:`helper_lib.analysis.sample_quality.prior_sample_report`); ``train_loader`` then
            provides an autoencoder's codes for its fitted-Gaussian baseline.
        samples: how many prior samples to score.
        reconstruction_weight: the alpha the VAE was trained with; it sets the Gaussian
            decoder's variance in the log-likelihood (``sigma^2 = 1 / (2 alpha)``).
        iw_random: take the log-likelihood's ``iw_images`` at random (seed 0) rather than the
            first ones. MNIST's first 5,000 test images are the easier half (they come from
            NIST's training set, the rest from its test set), so the first N are biased.

    Returns keys ``test`` (means), and for a VAE ``test_se``, ``iw_log_likelihood``,
    ``active_units``; ``reconstruction_at_mean`` and ``samples`` for generative models.
    """
    name = model_type(model).name
    if name == "vae":
        report = _vae_report(model, test_loader, kind, k, iw_images, iw_random, max_images,
                             reconstruction_weight, progress)
    else:
        report = {"test": evaluate_model(model, test_loader, max_items=max_images)}
        if name == "classifier":
            return report
    report["reconstruction_at_mean"] = reconstruction_at_mean(model, test_loader, max_images)
    if classifier is not None:
        from .sample_quality import prior_sample_report

        report["samples"] = prior_sample_report(model, classifier, test_loader, train_loader,
                                                n=samples, reference_images=max_images)
    return report


def _vae_report(model: nn.Module, test_loader: DataLoader, kind: str, k: int,
                iw_images: int | None, iw_random: bool, max_images: int | None,
                reconstruction_weight: float, progress: bool) -> dict[str, Any]:
    """A VAE's part of :func:`evaluation_report`: the loss terms with their standard errors,
    the importance-weighted log-likelihood and the active units."""
    report: dict[str, Any] = {}
    per = vae_losses_per_image(model, test_loader, kind=kind, max_items=max_images)
    report["test"] = mean_vae_losses(per)  # the same pass as the standard errors
    report["test_se"] = {"reconstruction": standard_error(per["reconstruction"]),
                         "kl": standard_error(per["kl"]),
                         "total": standard_error(per["reconstruction"] + per["kl"]),
                         "images": len(per["kl"])}
    if k > 0:
        t0 = time.perf_counter()
        iw_loader, iw_max = test_loader, iw_images or max_images
        if iw_random and iw_max is not None:
            order = torch.randperm(len(test_loader.dataset),
                                   generator=torch.Generator().manual_seed(0))[:iw_max]
            images = torch.stack([test_loader.dataset[int(i)][0] for i in order])
            iw_loader = DataLoader(TensorDataset(images, torch.zeros(len(images))),
                                   batch_size=test_loader.batch_size or 256)
        values = importance_weighted_log_likelihood(
            model, iw_loader, k=k, kind=kind, max_items=iw_max, progress=progress,
            per_image=True, reconstruction_weight=reconstruction_weight)
        report["iw_log_likelihood"] = {
            "nats_per_image": values.mean().item(),
            "se": standard_error(values),
            "k": k,
            "likelihood": (f"Gaussian N(x_hat, {1 / (2 * reconstruction_weight):g} I), a "
                           "density" if kind == "mse" else "Bernoulli per pixel"),
            "images": len(values),
            "subset": "random (seed 0)" if iw_random and iw_max is not None else "first",
            "seconds": round(time.perf_counter() - t0, 1),
        }
    au = active_units(model, test_loader, max_items=max_images)
    report["active_units"] = {"count": au.count, "of": model.latent_dim,
                              "variances": [round(v, 4) for v in au.variances.tolist()]}
    return report
