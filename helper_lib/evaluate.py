"""Evaluation: losses on a split, importance-weighted log-likelihood, active units, latents.

Every function here runs the model under ``eval()`` and ``torch.no_grad()``, seeds its own
randomness (without disturbing the global RNG) and puts the model back in the mode it was in.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .fast.precision import resolve_precision
from .losses import kl_divergence, reconstruction_loss
from .model_types import check_outputs, model_type

__all__ = [
    "mean_vae_losses",
    "evaluate_vae",
    "vae_losses_per_image",
    "standard_error",
    "evaluate_autoencoder",
    "evaluate_classifier",
    "evaluate_model",
    "reference_eval",
    "REFERENCE_EVAL",
    "importance_weighted_log_likelihood",
    "active_units",
    "ActiveUnits",
    "collect_latents",
    "reconstruct",
    "model_device",
    "inference",
    "log_likelihood_of_x",
]


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's parameters."""
    return next(model.parameters()).device


@contextlib.contextmanager
def inference(model: nn.Module, seed: int | None) -> Iterator[torch.device]:
    """``eval()`` + ``no_grad()`` + a private, seeded RNG; restores the model's mode after."""
    was_training = model.training
    device = model_device(model)
    model.eval()
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.no_grad())
            # torch.manual_seed reseeds the CPU, every initialized CUDA device and MPS, so all
            # of their states are saved here and restored afterwards.
            cuda = range(torch.cuda.device_count()) if torch.cuda.is_initialized() else []
            stack.enter_context(torch.random.fork_rng(devices=cuda))
            if device.type == "mps":
                stack.enter_context(torch.random.fork_rng(devices=[device], device_type="mps"))
            if seed is not None:
                torch.manual_seed(seed)
            yield device
    finally:
        model.train(was_training)


def _batches(loader: DataLoader, max_items: int | None
             ) -> Iterator[tuple[Tensor, Tensor | None]]:
    """``(x, y)`` of each batch as the loader gives it, ``max_items`` images in all at most (the
    last batch cut short; ``None``: every batch). ``y`` is ``None`` for a loader without labels.
    The one place where an evaluation stops early."""
    seen = 0
    for x, *rest in loader:
        if max_items is not None:
            if seen >= max_items:
                return
            x, rest = x[: max_items - seen], [r[: max_items - seen] for r in rest]
        seen += len(x)
        yield x, (rest[0] if rest else None)


def vae_losses_per_image(
    model: nn.Module,
    loader: DataLoader,
    kind: str = "mse",
    seed: int | None = 0,
    precision: str = "fp32",
    max_items: int | None = None,
) -> dict[str, Tensor]:
    """Each image's loss terms: ``{"reconstruction": [N], "kl": [N]}``, float64 on the CPU.

    The reconstruction term is summed over pixels and the KL over latent dims, as in training;
    ``z`` is sampled with a fixed ``seed``. Means and standard errors follow from these.
    """
    with inference(model, seed) as device:
        prec = resolve_precision(precision, device)
        rec_all, kl_all = [], []
        for x, _ in _batches(loader, max_items):
            x = x.to(device)
            with prec.autocast(device):
                _, mu, logvar, x_hat = check_outputs(model(x), model, "vae")
            rec_all.append(reconstruction_loss(x_hat, x, kind).double().cpu())
            kl_all.append(kl_divergence(mu.float(), logvar.float()).double().cpu())
    empty = torch.zeros(0, dtype=torch.float64)
    return {"reconstruction": torch.cat(rec_all) if rec_all else empty,
            "kl": torch.cat(kl_all) if kl_all else empty}


def standard_error(values: Tensor) -> float:
    """The standard error of the mean of ``values [N]``: ``std / sqrt(N)``."""
    return float(values.double().std() / math.sqrt(len(values))) if len(values) > 1 else math.nan


def evaluate_vae(
    model: nn.Module,
    loader: DataLoader,
    kind: str = "mse",
    reconstruction_weight: float = 1.0,
    beta: float = 1.0,
    seed: int | None = 0,
    precision: str = "fp32",
    max_items: int | None = None,
) -> dict[str, float]:
    """Mean loss per image on a split: ``{"total", "reconstruction", "kl"}``.

    Same definitions as training (:func:`helper_lib.losses.vae_loss`): per-image sums over
    pixels and latent dims, averaged over all images (so a small last batch counts for what it
    is). ``z`` is sampled, with a fixed ``seed`` so repeated calls agree exactly.
    """
    per = vae_losses_per_image(model, loader, kind, seed, precision, max_items)
    return mean_vae_losses(per, reconstruction_weight, beta)


def mean_vae_losses(per: dict[str, Tensor], reconstruction_weight: float = 1.0,
                    beta: float = 1.0) -> dict[str, float]:
    """``{"total", "reconstruction", "kl"}``: the means of :func:`vae_losses_per_image`'s
    ``[N]`` tensors, so that one pass over the test set gives both."""
    n = max(len(per["kl"]), 1)
    rec_mean, kl_mean = per["reconstruction"].sum().item() / n, per["kl"].sum().item() / n
    return {
        "total": reconstruction_weight * rec_mean + beta * kl_mean,
        "reconstruction": rec_mean,
        "kl": kl_mean,
    }


def evaluate_autoencoder(
    model: nn.Module, loader: DataLoader, precision: str = "fp32", max_items: int | None = None
) -> dict[str, float]:
    """Mean squared error per pixel on a split: ``{"mse": ...}``."""
    with inference(model, None) as device:
        prec = resolve_precision(precision, device)
        total, count = 0.0, 0
        for x, _ in _batches(loader, max_items):
            x = x.to(device)
            with prec.autocast(device):
                _, x_hat = check_outputs(model(x), model, "autoencoder")
            total += F.mse_loss(x_hat.float(), x, reduction="sum").item()
            count += x.numel()
    return {"mse": total / max(count, 1)}


def evaluate_classifier(
    model: nn.Module, loader: DataLoader, precision: str = "fp32", max_items: int | None = None
) -> dict[str, float]:
    """Mean cross-entropy (nats) and accuracy on a split: ``{"cross_entropy", "accuracy"}``.

    The loader yields ``(images [B, 1, 28, 28], labels [B])``.
    """
    with inference(model, None) as device:
        prec = resolve_precision(precision, device)
        loss, correct, count = 0.0, 0, 0
        for x, y in _batches(loader, max_items):
            x, y = x.to(device), y.to(device)
            with prec.autocast(device):
                (logits,) = check_outputs(model(x), model, "classifier")
            loss += F.cross_entropy(logits.float(), y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            count += len(y)
    return {"cross_entropy": loss / max(count, 1), "accuracy": correct / max(count, 1)}


#: The fixed check that tests re-run on shipped checkpoints: the first N test images, this
#: seed for the sampled ``z``, in fp32. Stored in each checkpoint's metadata with the results.
REFERENCE_EVAL = {"images": 2000, "seed": 0, "precision": "fp32"}


def evaluate_model(model: nn.Module, loader: DataLoader, kind: str = "mse",
                   reconstruction_weight: float = 1.0, beta: float = 1.0, seed: int | None = 0,
                   precision: str = "fp32", max_items: int | None = None) -> dict[str, float]:
    """The mean loss of any of the course's models on a split, by its type
    (:func:`helper_lib.model_types.model_type`): :func:`evaluate_vae` (``kind``,
    ``reconstruction_weight``, ``beta`` and ``seed`` are its own), :func:`evaluate_autoencoder`
    or :func:`evaluate_classifier`."""
    name = model_type(model).name
    if name == "vae":
        return evaluate_vae(model, loader, kind, reconstruction_weight, beta, seed, precision,
                            max_items)
    if name == "classifier":
        return evaluate_classifier(model, loader, precision, max_items)
    return evaluate_autoencoder(model, loader, precision, max_items)


def reference_eval(model: nn.Module, loader: DataLoader, kind: str = "mse") -> dict[str, float]:
    """The loss of ``model`` on the fixed reference subset of ``loader`` (:data:`REFERENCE_EVAL`),
    with :func:`evaluate_model`."""
    return evaluate_model(model, loader, kind=kind, seed=REFERENCE_EVAL["seed"],
                          max_items=REFERENCE_EVAL["images"],
                          precision=REFERENCE_EVAL["precision"])


def log_likelihood_of_x(x_hat: Tensor, x: Tensor, kind: str,
                         reconstruction_weight: float = 1.0) -> Tensor:
    """log p(x | z) per sample, ``[N]``, for the decoder's output ``x_hat`` ``[N, ...]``."""
    if kind == "bce":
        return -reconstruction_loss(x_hat, x, "bce")
    if kind == "mse":
        # N(x; x_hat, sigma^2 I) with sigma^2 = 1 / (2 alpha):
        #   -alpha ||x - x_hat||^2 - (P / 2) log(pi / alpha)
        alpha, pixels = reconstruction_weight, x[0].numel()
        return (-alpha * reconstruction_loss(x_hat, x, "mse")
                - 0.5 * pixels * math.log(math.pi / alpha))
    raise ValueError(f"kind must be 'mse' or 'bce', got {kind!r}")


def importance_weighted_log_likelihood(
    model: nn.Module,
    loader: DataLoader,
    k: int = 100,
    kind: str = "mse",
    seed: int | None = 0,
    max_items: int | None = None,
    chunk: int = 512,
    progress: bool = False,
    per_image: bool = False,
    reconstruction_weight: float = 1.0,
) -> float | Tensor:
    """Importance-weighted estimate of the mean log p(x) per image, in nats (Burda et al., 2016).

    With ``per_image=True`` it returns every image's estimate, ``[N]`` float64, instead of their
    mean (e.g. for a standard error: ``values.std() / sqrt(N)``).

    .. math:: \\log p(x) \\approx \\log \\frac1k \\sum_{i=1}^k
              \\frac{p(x \\mid z_i)\\, p(z_i)}{q(z_i \\mid x)}, \\quad z_i \\sim q(z \\mid x)

    computed with log-sum-exp. It is a lower bound that tightens as ``k`` grows (``k = 1`` is
    the ELBO).

    The decoder likelihood must match the training loss:

    * ``kind="mse"``: Gaussian ``N(x_hat, sigma^2 I)`` with ``sigma^2 = 1 / (2 alpha)``, where
      ``alpha = reconstruction_weight`` is the weight the model was trained with (the lecture's
      alpha, 1 by default, i.e. ``sigma^2 = 1/2``): the density whose negative log is
      ``alpha`` times the summed squared error plus ``(784 / 2) log(pi / alpha)``. Pass the
      training alpha, or the estimate scores a different model than the one trained. MNIST
      pixels are not continuous, so this is a *density*, not a probability, and the number
      can be positive; compare it only between Gaussian models.
    * ``kind="bce"``: independent Bernoulli pixels, ``log p = -BCE`` (a proper likelihood for
      binarized images).

    Runs in fp32. Cost: ``k`` decoder passes per image; ``progress=True`` shows a tqdm bar.
    ``chunk`` caps the images decoded at once (small chunks stay in CPU caches: 512 was about
    2.5x faster than 4096 on a 2-core CPU).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not reconstruction_weight > 0:
        raise ValueError(f"reconstruction_weight must be > 0, got {reconstruction_weight}")
    n_images = len(loader.dataset) if max_items is None else min(max_items, len(loader.dataset))
    bar = tqdm(total=n_images, disable=not progress, unit="image", desc=f"IWLL k={k}")
    with inference(model, seed) as device, bar:
        values = []
        for x, _ in _batches(loader, max_items):
            x = x.to(device)
            encoded = model.encode(x)
            if not (isinstance(encoded, tuple) and len(encoded) == 2):
                raise TypeError(f"{type(model).__name__}.encode must return (mu, logvar), like "
                                "ConvVAE's: the log-likelihood needs a VAE's q(z | x)")
            mu, logvar = encoded  # [B, D] each
            std = torch.exp(0.5 * logvar)
            per_chunk = max(1, chunk // len(x))
            log_w = []
            for start in range(0, k, per_chunk):
                kk = min(per_chunk, k - start)
                eps = torch.randn((kk, *mu.shape), device=device)
                z = mu + std * eps  # [kk, B, D]
                log_q = torch.distributions.Normal(mu, std).log_prob(z).sum(-1)  # [kk, B]
                log_prior = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
                x_hat = model.decode(z.reshape(-1, z.shape[-1]))  # [kk * B, 1, 28, 28]
                x_rep = x.unsqueeze(0).expand(kk, *x.shape).reshape(x_hat.shape)
                log_px = log_likelihood_of_x(x_hat, x_rep, kind, reconstruction_weight)
                log_px = log_px.reshape(kk, len(x))
                log_w.append(log_px + log_prior - log_q)
            ll = torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k)  # [B]
            values.append(ll.double().cpu())
            bar.update(len(x))
    per = torch.cat(values) if values else torch.zeros(0, dtype=torch.float64)
    if per_image:
        return per
    return per.sum().item() / max(len(per), 1)


class ActiveUnits(NamedTuple):
    """``count`` latent dims whose posterior mean varies across the data by more than the
    threshold; ``variances`` ``[D]`` is Var_x(E_q[z_j | x]) for each dim."""

    count: int
    variances: Tensor


def active_units(
    model: nn.Module, loader: DataLoader, threshold: float = 0.01, max_items: int | None = None
) -> ActiveUnits:
    """Count the active latent units (Burda et al., 2016): dims ``j`` with
    ``Var_x(mu_j(x)) > threshold``. An inactive unit's ``mu`` ignores the input, i.e. its
    posterior has collapsed to the prior."""
    codes, _ = collect_latents(model, loader, max_items=max_items)
    variances = codes.double().var(dim=0)
    return ActiveUnits(int((variances > threshold).sum()), variances.float())


def collect_latents(
    model: nn.Module, loader: DataLoader, max_items: int | None = None
) -> tuple[Tensor, Tensor]:
    """Deterministic codes and labels for a split: ``(codes [N, D], labels [N])`` on the CPU.

    Codes are ``model.embed(x)``: ``mu`` for a VAE, ``z`` for a plain autoencoder.
    """
    with inference(model, None) as device:
        codes, labels = [], []
        for x, y in _batches(loader, max_items):
            codes.append(model.embed(x.to(device)).float().cpu())
            labels.append(y)
    return torch.cat(codes), torch.cat(labels)


def reconstruct(model: nn.Module, x: Tensor) -> Tensor:
    """Deterministic reconstructions ``decode(embed(x))``: ``[B, 1, 28, 28] -> [B, 1, 28, 28]``.

    For a VAE this decodes the posterior mean (no sampling noise).
    """
    with inference(model, None) as device:
        return model.decode(model.embed(x.to(device))).float().cpu()


def quantile_grid(n: int = 15, quantiles: tuple[float, float] = (0.05, 0.95)) -> Tensor:
    """``[n * n, 2]`` codes at evenly spaced N(0, 1) quantiles along each axis, row by row from
    the top (largest ``z_2``) and left to right (growing ``z_1``): the layout of an image grid,
    in which each image covers an equal share of the prior's mass."""
    axis = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(*quantiles, n))
    z2, z1 = torch.meshgrid(axis.flip(0), axis, indexing="ij")
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)

