"""Figures of notebooks 08 and 09, inside the latent space: the true posterior next to the encoder's
Gaussian, the aggregate posterior against the prior, and latent arithmetic.

Like :mod:`helper_lib.plotting`, every function returns a detached ``Figure`` (end the cell
with it) and never calls ``show``.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor
from torchvision.utils import make_grid

from ..plotting import finish_figure
from .attributes import ArithmeticResult
from .posterior import GridPosterior, grid_moments

__all__ = ["plot_true_posteriors", "plot_aggregate_posterior", "plot_arithmetic"]


def _gaussian_levels(log_density: np.ndarray) -> list[float]:
    """Density levels of a 2-D Gaussian's 1-, 2- and 3-sigma ellipses (39 %, 86 %, 99 % of
    its mass), relative to the peak of ``log_density``: ``exp(-r^2 / 2)`` for r = 3, 2, 1."""
    peak = float(np.exp(log_density.max()))
    return [peak * float(np.exp(-0.5 * r * r)) for r in (3, 2, 1)]


def plot_true_posteriors(images: Tensor, grids: Sequence[GridPosterior],
                         titles: Sequence[str] | None = None) -> Figure:
    """One panel per image: ``p(z | x)`` from the grid (grey bands) and the encoder's
    ``q(z | x)`` (red lines), both at the same relative density levels, those of a Gaussian's
    1-, 2- and 3-sigma ellipses, so their sizes compare directly; the image sits in a corner.

    Args:
        images: ``[K, 1, 28, 28]``.
        grids: ``K`` results of :func:`helper_lib.analysis.posterior.true_posterior_grid` (or
            the fine grids of :func:`~helper_lib.analysis.posterior.zoomed_posterior_grid`).
    """
    k = len(grids)
    fig, axes = plt.subplots(1, k, figsize=(4.1 * k, 4.0), layout="constrained", squeeze=False)
    for i, (ax, g) in enumerate(zip(axes[0], grids, strict=True)):
        z1, z2 = g.z1.numpy(), g.z2.numpy()
        log_post = g.log_posterior.numpy()
        post = np.exp(log_post)
        ax.contourf(z1, z2, post, levels=[*_gaussian_levels(log_post), post.max() * 1.001],
                    colors=["0.85", "0.6", "0.3"])
        ax.contour(z1, z2, np.exp(g.log_q.numpy()), levels=_gaussian_levels(g.log_q.numpy()),
                   colors="tab:red", linewidths=1.2)
        # show both densities out to 3.5 standard deviations, not the whole grid
        lo = torch.stack([m.mean - 3.5 * m.sd for m in grid_moments(g)]).min(0).values
        hi = torch.stack([m.mean + 3.5 * m.sd for m in grid_moments(g)]).max(0).values
        half = float((hi - lo).max()) / 2
        mid = (lo + hi) / 2
        ax.set_xlim(float(mid[0]) - half, float(mid[0]) + half)
        ax.set_ylim(float(mid[1]) - half, float(mid[1]) + half)
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel("$z_1$")
        ax.set_ylabel("$z_2$")
        title = titles[i] if titles is not None else f"image {i}"
        ax.set_title(f"{title}\nKL(q || p(z|x)) = {g.kl_q_to_posterior:.2f} nats", fontsize=10)
        inset = ax.inset_axes([0.70, 0.70, 0.28, 0.28])
        inset.imshow(images[i, 0].cpu().numpy(), cmap="gray_r", vmin=0, vmax=1)
        inset.set_xticks([])
        inset.set_yticks([])
    handles = [plt.Rectangle((0, 0), 1, 1, color="0.45"),
               plt.Line2D([], [], color="tab:red", lw=1.2)]
    fig.legend(handles, ["true posterior p(z | x), from the grid",
                         "encoder's q(z | x)  (both: 1-, 2-, 3-sigma levels)"],
               loc="outside lower center", ncols=2, fontsize=9)
    return finish_figure(fig)


def plot_aggregate_posterior(axis: Tensor, log_q_grid: Tensor, prior_z: Tensor, low: Tensor,
                             threshold: float) -> Figure:
    """The aggregate posterior ``q(z)`` as density contours over the prior's circles, with the
    prior draws that land where ``q(z)`` is low marked.

    Args:
        axis: ``[n]`` the grid's axis (the same for ``z_1`` and ``z_2``).
        log_q_grid: ``[n, n]`` ``log q(z)`` on the grid (rows: ``z_2``).
        prior_z: ``[M, 2]`` draws from N(0, I).
        low: ``[M]`` bool, True where ``log q(z) < threshold``.
        threshold: the ``log q`` level called low (drawn as a dashed contour).
    """
    a = axis.numpy()
    lq = log_q_grid.numpy()
    fig, ax = plt.subplots(figsize=(6.4, 5.6), layout="constrained")
    top = np.ceil(lq.max())  # whole-number levels, so the colour bar reads -1, -2, ...
    filled = ax.contourf(a, a, lq, levels=np.linspace(top - 8, top, 17), cmap="Blues",
                         extend="min")
    fig.colorbar(filled, ax=ax, label="log q(z) (aggregate posterior)",
                 ticks=np.arange(top - 8, top + 0.5, 1.0))
    ax.contour(a, a, lq, levels=[threshold], colors="tab:orange", linestyles="--",
               linewidths=1.5)
    for r in (1, 2, 3):
        ax.add_patch(plt.Circle((0, 0), r, fill=False, color="0.25", lw=0.8, ls=":"))
    p = prior_z.numpy()
    lo = low.numpy()
    ax.scatter(p[~lo, 0], p[~lo, 1], s=2, color="0.3", alpha=0.35, rasterized=True,
               label=f"prior draws where q(z) is not low ({(~lo).sum():,})")
    ax.scatter(p[lo, 0], p[lo, 1], s=9, color="tab:orange", edgecolor="black", linewidth=0.3,
               label=f"prior draws where q(z) is low ({lo.sum():,})")
    ax.set_xlim(a[0], a[-1])
    ax.set_ylim(a[0], a[-1])
    ax.set_aspect("equal")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title("aggregate posterior q(z) (blue), prior's 1-2-3 sigma circles (dotted),\n"
                 "the low-q(z) boundary (dashed orange)", fontsize=10)
    ax.legend(loc="lower left", fontsize=9, markerscale=2, framealpha=0.9)
    return finish_figure(fig)


def plot_arithmetic(result: ArithmeticResult, attribute: str, title: str = "") -> Figure:
    """Left: the decodings of ``codes + m * vector``, one row per image and one column per
    multiple ``m``. Right: the measured attribute (mean ± 2 standard errors) and the classifier's
    agreement with the images' classes, against ``m``."""
    m = result.multiples.numpy()
    k = result.images.shape[1]
    tiles = result.images.transpose(0, 1).reshape(-1, 1, 28, 28)  # row = image, col = multiple
    grid = make_grid(tiles, nrow=len(m), padding=2, pad_value=0.5)[0].numpy()
    fig, (ax_img, ax_val) = plt.subplots(1, 2, figsize=(10.5, 0.42 * k + 2.2),
                                         layout="constrained",
                                         gridspec_kw={"width_ratios": [1.0, 1.25]})
    ax_img.imshow(grid, cmap="gray_r", vmin=0, vmax=1)  # ink black, as in every figure
    ax_img.set_xticks([2 + 30 * i + 14 for i in range(len(m))], [f"{v:+g}" for v in m])
    ax_img.set_yticks([])
    ax_img.set_xlabel("multiple m of the attribute vector")
    ax_img.set_title(f"decode(code + m · v), v = {attribute} vector", fontsize=10)
    mean, se = result.attribute.numpy(), result.attribute_se.numpy()
    ax_val.errorbar(m, mean, yerr=2 * se, color="tab:blue", marker="o", capsize=3)
    ax_val.set_xlabel("multiple m")
    ax_val.set_ylabel(f"measured {attribute} of the decodings", color="tab:blue")
    if not torch.isnan(result.agreement).all():
        right = ax_val.twinx()
        right.plot(m, 100 * result.agreement.numpy(), color="tab:green", marker="s", ls="--")
        right.set_ylabel("classifier keeps the class (%)", color="tab:green")
        right.set_ylim(0, 102)
    ax_val.set_title(title or f"{attribute}: the measured response", fontsize=10)
    return finish_figure(fig)
