"""The true posterior p(z | x) of a 2-D model, computed on a grid, next to the encoder's q(z | x).

For a latent space of two dimensions the posterior can be computed directly: on a fine grid of
``z``, ``log p(z | x) = log p(x | z) + log p(z) - log p(x)``, where ``log p(x)`` is the
log-sum-exp over the grid times the cell area. The gap between the ELBO and ``log p(x)`` is
``KL(q(z | x) || p(z | x))``, which the grid gives as well. (The fixed grid of codes that the
manifold plot and the training film decode is :func:`helper_lib.evaluate.quantile_grid`.)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..evaluate import inference, log_likelihood_of_x

__all__ = ["GridPosterior", "Moments", "GapSplit", "true_posterior_grid",
           "zoomed_posterior_grid", "grid_moments", "gap_split", "aggregate_log_density",
           "grid_kl_to_prior"]


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
                        chunk: int = 4096,
                        bounds: tuple[float, float, float, float] | None = None
                        ) -> GridPosterior:
    """``p(z | x)`` on an ``n x n`` grid over ``[-limit, limit]^2`` for one image ``x``, or over
    the rectangle ``bounds = (z1_min, z1_max, z2_min, z2_max)`` when it is given.

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
    lo1, hi1, lo2, hi2 = bounds if bounds is not None else (-limit, limit, -limit, limit)
    axis1 = torch.linspace(lo1, hi1, n, dtype=torch.float64)
    axis2 = torch.linspace(lo2, hi2, n, dtype=torch.float64)
    z2, z1 = torch.meshgrid(axis2, axis1, indexing="ij")
    z = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)  # [n*n, 2]
    with inference(model, None) as device:
        x = x.reshape(1, *x.shape[-3:]) if x.dim() >= 3 else x.reshape(1, 1, *x.shape)
        x = x.to(device)
        mu, logvar = model.encode(x)
        log_px_given_z = []
        for part in z.split(chunk):
            x_hat = model.decode(part.to(device, torch.float32)).float()
            log_px_given_z.append(log_likelihood_of_x(
                x_hat, x.expand_as(x_hat), kind, reconstruction_weight).double().cpu())
    log_joint = torch.cat(log_px_given_z) + torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    cell = (axis1[1] - axis1[0]).item() * (axis2[1] - axis2[0]).item()
    log_px = (torch.logsumexp(log_joint, 0) + math.log(cell)).item()
    log_post = log_joint - log_px  # a density: sums to 1 times the cell area
    q = torch.distributions.Normal(mu.double().cpu()[0], torch.exp(0.5 * logvar.double().cpu()[0]))
    log_q = q.log_prob(z).sum(1)
    weights = torch.exp(log_q) * cell  # q's mass per cell
    kl = float((weights * (log_q - log_post)).sum() / weights.sum())
    return GridPosterior(axis1, axis2, log_post.reshape(n, n), log_q.reshape(n, n), log_px, kl)


class Moments(NamedTuple):
    """Mean ``[2]``, standard deviations ``[2]`` and correlation of a density on a grid."""

    mean: Tensor
    sd: Tensor
    corr: float


def grid_moments(grid: GridPosterior) -> tuple[Moments, Moments]:
    """The moments of the true posterior and of the encoder's Gaussian on ``grid``,
    ``(posterior, q)``, from the grid's densities (so both are measured the same way)."""
    z2, z1 = torch.meshgrid(grid.z2, grid.z1, indexing="ij")
    out = []
    for log_density in (grid.log_posterior, grid.log_q):
        w = torch.exp(log_density - log_density.max())
        w = w / w.sum()
        mean = torch.stack([(w * z1).sum(), (w * z2).sum()])
        d1, d2 = z1 - mean[0], z2 - mean[1]
        sd = torch.stack([(w * d1**2).sum().sqrt(), (w * d2**2).sum().sqrt()])
        out.append(Moments(mean, sd, float((w * d1 * d2).sum() / (sd[0] * sd[1]))))
    return out[0], out[1]


class GapSplit(NamedTuple):
    """The ELBO's gap ``KL(q(z | x) || p(z | x))`` of one image, in nats, split into its causes.

    ``offset + width + tilt + rest == total`` exactly; see :func:`gap_split`.
    """

    total: float
    offset: float
    width: float
    tilt: float
    rest: float


def gap_split(grid: GridPosterior) -> GapSplit:
    """Split the grid's gap ``KL(q || p)`` (``q`` the encoder's diagonal Gaussian, ``p`` the true
    posterior) into what a diagonal Gaussian gets wrong, each part a closed-form KL against a
    Gaussian ``p̂`` with the posterior's mean ``m``, standard deviations ``s`` and correlation
    ``ρ`` (from :func:`grid_moments`):

    * ``offset`` = ½ δᵀ Σ⁻¹ δ, with δ = mean of q − m and Σ the covariance of ``p̂``: the cost
      of the misplaced mean alone;
    * ``width`` = ½ Σ_j (r_j − 1 − ln r_j), r_j = (sd_j of q / s_j)²: the cost of the wrong
      widths alone (zero when q's standard deviations equal the posterior's);
    * ``tilt`` = ½ [2 / (1 − ρ²) − 2 + ln(1 − ρ²)]: what the best diagonal Gaussian, of the right
      place and widths, pays because it cannot tilt with the posterior;
    * ``rest`` = total − the three: the posterior's departure from a Gaussian (skew, curved
      banana shapes), plus a small width-tilt interaction, ½ ρ²/(1 − ρ²) (Σ_j r_j − 2).
    """
    post, q = grid_moments(grid)
    rho = post.corr
    cov = torch.stack([torch.stack([post.sd[0] ** 2, rho * post.sd[0] * post.sd[1]]),
                       torch.stack([rho * post.sd[0] * post.sd[1], post.sd[1] ** 2])])
    delta = (q.mean - post.mean).double()
    offset = 0.5 * float(delta @ torch.linalg.solve(cov.double(), delta))
    r = (q.sd / post.sd).double() ** 2
    width = 0.5 * float((r - 1 - torch.log(r)).sum())
    tilt = 0.5 * (2 / (1 - rho**2) - 2 + math.log(1 - rho**2))
    total = float(grid.kl_q_to_posterior)
    return GapSplit(total, offset, width, tilt, total - offset - width - tilt)


def zoomed_posterior_grid(model: nn.Module, x: Tensor, kind: str = "mse",
                          reconstruction_weight: float = 1.0, limit: float = 4.0,
                          coarse_n: int = 61, fine_n: int = 81, floor: float = 1e-5,
                          chunk: int = 4096) -> tuple[GridPosterior, GridPosterior]:
    """A coarse grid over ``[-limit, limit]^2`` to find where the mass is, then a fine grid
    over just that part, where the KL and ``log p(x)`` are computed accurately.

    The fine window is the smallest rectangle holding every coarse cell where ``p(z | x)`` or
    ``q(z | x)`` exceeds ``floor`` times its peak, widened by one coarse cell on each side
    (clipped to the coarse grid). On the lecture's model a floor of 1e-5 and one of 1e-7 give the
    same KL to 0.002 nats. Both grids are returned, ``(coarse, fine)``; quote the fine one.
    ``coarse_n * coarse_n + fine_n * fine_n`` decodings in all.
    """
    coarse = true_posterior_grid(model, x, kind, reconstruction_weight, limit=limit, n=coarse_n,
                                 chunk=chunk)
    keep = ((coarse.log_posterior > coarse.log_posterior.max() + math.log(floor))
            | (coarse.log_q > coarse.log_q.max() + math.log(floor)))
    rows, cols = keep.nonzero(as_tuple=True)
    step = (2 * limit) / (coarse_n - 1)
    z1, z2 = coarse.z1, coarse.z2
    bounds = (max(z1[cols.min()].item() - step, -limit), min(z1[cols.max()].item() + step, limit),
              max(z2[rows.min()].item() - step, -limit), min(z2[rows.max()].item() + step, limit))
    fine = true_posterior_grid(model, x, kind, reconstruction_weight, n=fine_n, chunk=chunk,
                               bounds=bounds)
    return coarse, fine


def aggregate_log_density(mu: Tensor, logvar: Tensor, z: Tensor, chunk: int = 1024,
                          leave_out: Tensor | None = None) -> Tensor:
    """``log q(z)`` of the aggregate posterior ``q(z) = 1/N sum_i N(z; mu_i, diag(exp(logvar_i)))``
    at the points ``z``: the mixture of every image's Gaussian (notebook 09).

    A point drawn *from* component ``i`` (``z_i ~ q(z | x_i)``) sits where that component is
    dense, so scoring it under a mixture that contains component ``i`` inflates its density, by a
    lot when the Gaussians are narrow or D is large. Pass ``leave_out`` to score such points under
    the other ``N - 1`` components only (leave-one-out); points drawn independently of the
    codes, such as prior draws, need no such care.

    Args:
        mu, logvar: ``[N, D]`` the encoder's outputs for N images.
        z: ``[M, D]`` points to evaluate.
        leave_out: ``[M]`` integer, the component each point was drawn from (``-1``: none), or
            ``None`` to use every component for every point.

    Returns:
        ``[M]`` float64 log-densities.
    """
    if mu.shape != logvar.shape or mu.shape[1] != z.shape[1]:
        raise ValueError(f"shapes do not match: mu {tuple(mu.shape)}, logvar "
                         f"{tuple(logvar.shape)}, z {tuple(z.shape)}")
    if leave_out is not None:
        leave_out = torch.as_tensor(leave_out, dtype=torch.long)
        if leave_out.shape != (len(z),) or bool((leave_out >= len(mu)).any()):
            raise ValueError(f"leave_out must be [{len(z)}] indices below {len(mu)}, got "
                             f"shape {tuple(leave_out.shape)}")
    mu, logvar, z = mu.double(), logvar.double(), z.double()
    # sum_d (z_d - mu_id)^2 / var_id = (z^2) a_i - 2 z b_i + c_i, with a = 1/var, b = mu/var and
    # c = sum_d mu^2/var: two matrix products instead of an [M, N, D] tensor.
    a = torch.exp(-logvar)  # [N, D]
    b = mu * a
    c = (mu * b).sum(1)  # [N]
    const = -0.5 * (logvar.sum(1) + mu.shape[1] * math.log(2 * math.pi) + c)  # [N]
    out = []
    for start in range(0, len(z), chunk):
        part = z[start:start + chunk]
        log_terms = const[None] - 0.5 * ((part**2) @ a.T) + part @ b.T  # [m, N]
        n = torch.full((len(part),), float(len(mu)), dtype=torch.float64)
        if leave_out is not None:
            own = leave_out[start:start + chunk]
            rows = (own >= 0).nonzero(as_tuple=True)[0]
            log_terms[rows, own[rows]] = -math.inf
            n[rows] -= 1
        out.append(torch.logsumexp(log_terms, dim=1) - torch.log(n))
    return torch.cat(out)


def grid_kl_to_prior(axis: Tensor, log_q: Tensor) -> tuple[float, float]:
    """``KL(q(z) || N(0, I))`` of a 2-D density given on the square grid ``axis x axis``
    (``log_q``: ``[n, n]``, rows ``z2``), by the midpoint rule, with ``q`` renormalized on the
    grid. Returns ``(kl, mass)``: the KL in nats and the mass of ``q`` inside the grid before
    renormalizing (close to 1 when the grid covers ``q``). A Gaussian component of standard
    deviation ``σ`` is integrated accurately when the step is at most about ``σ``."""
    step = float(axis[1] - axis[0])
    z2, z1 = torch.meshgrid(axis.double(), axis.double(), indexing="ij")
    log_p = -0.5 * (z1**2 + z2**2) - math.log(2 * math.pi)
    log_cell = log_q.double() + 2 * math.log(step)  # log of q's mass in each cell
    mass = float(torch.logsumexp(log_cell.ravel(), 0).exp())
    w = torch.exp(log_cell) / mass
    kl = float((w * (log_q.double() - math.log(mass) - log_p)).sum())
    return kl, mass


