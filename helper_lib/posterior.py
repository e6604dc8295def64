"""The true posterior p(z | x) of a 2-D model, computed on a grid, next to the encoder's q(z | x).

For a latent space of two dimensions the posterior can be computed directly: on a fine grid of
``z``, ``log p(z | x) = log p(x | z) + log p(z) - log p(x)``, where ``log p(x)`` is the
log-sum-exp over the grid times the cell area. The gap between the ELBO and ``log p(x)`` is
``KL(q(z | x) || p(z | x))``, which the grid gives as well.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .evaluate import _inference, _log_likelihood_of_x

__all__ = ["GridPosterior", "true_posterior_grid"]


class GridPosterior(NamedTuple):
    """The true posterior of one image on a grid, with the encoder's Gaussian for comparison.

    Attributes:
        z1, z2: the grid's axes, ``[n]`` each.
        log_posterior: ``log p(z | x)`` at every grid point, ``[n, n]`` (rows: ``z2``).
        log_q: the encoder's ``log q(z | x)`` at the same points, ``[n, n]``.
        log_px: ``log p(x)`` (nats), the grid's estimate.
        kl_q_to_posterior: ``KL(q(z | x) || p(z | x))`` in nats, from the grid: the ELBO's gap.
    """

    z1: Tensor
    z2: Tensor
    log_posterior: Tensor
    log_q: Tensor
    log_px: float
    kl_q_to_posterior: float


def true_posterior_grid(model: nn.Module, x: Tensor, kind: str = "mse",
                        reconstruction_weight: float = 1.0, limit: float = 4.0, n: int = 201,
                        chunk: int = 4096) -> GridPosterior:
    """``p(z | x)`` on an ``n x n`` grid over ``[-limit, limit]^2`` for one image ``x``.

    ``x``: ``[1, 28, 28]`` or ``[1, 1, 28, 28]``. The decoder likelihood is the one the model was
    trained with (``kind``, and ``reconstruction_weight`` for the Gaussian), as in
    :func:`helper_lib.evaluate.importance_weighted_log_likelihood`. The grid must cover the
    posterior's mass (check that ``log_posterior`` is small at the edges); a step of
    ``2 * limit / (n - 1)`` must resolve it (the encoder's sigma is about 0.1 after training,
    so 0.04 is fine).

    Raises:
        ValueError: the model's latent space is not two-dimensional.
    """
    if int(model.latent_dim) != 2:
        raise ValueError(f"true_posterior_grid needs a 2-D latent space, got {model.latent_dim}")
    axis = torch.linspace(-limit, limit, n, dtype=torch.float64)
    z2, z1 = torch.meshgrid(axis, axis, indexing="ij")
    z = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)  # [n*n, 2]
    with _inference(model, None) as device:
        x = x.reshape(1, *x.shape[-3:]) if x.dim() >= 3 else x.reshape(1, 1, *x.shape)
        x = x.to(device)
        mu, logvar = model.encode(x)
        log_px_given_z = []
        for part in z.split(chunk):
            x_hat = model.decode(part.to(device, torch.float32)).float()
            log_px_given_z.append(_log_likelihood_of_x(
                x_hat, x.expand_as(x_hat), kind, reconstruction_weight).double().cpu())
    log_joint = torch.cat(log_px_given_z) + torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    cell = (axis[1] - axis[0]).item() ** 2
    log_px = (torch.logsumexp(log_joint, 0) + math.log(cell)).item()
    log_post = log_joint - log_px  # a density: sums to 1 times the cell area
    q = torch.distributions.Normal(mu.double().cpu()[0], torch.exp(0.5 * logvar.double().cpu()[0]))
    log_q = q.log_prob(z).sum(1)
    weights = torch.exp(log_q) * cell  # q's mass per cell
    kl = float((weights * (log_q - log_post)).sum() / weights.sum())
    return GridPosterior(axis, axis, log_post.reshape(n, n), log_q.reshape(n, n), log_px, kl)
