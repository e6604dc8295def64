"""Figures for notebook 07: measurements across the sweep of :mod:`helper_lib.analysis.sweep`.

Each function takes the reports of :func:`helper_lib.analysis.sweep.get_report` (plain dicts) or the
models themselves, and returns a Figure (never shown by the library; see
:mod:`helper_lib.plotting`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import patheffects
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from torch import Tensor, nn
from torchvision.utils import make_grid

from ..evaluate import collect_latents, reconstruct
from ..plotting import DIGIT_COLOURS, SERIES_COLOURS, class_medians, finish_figure
from .sample_quality import decode_prior_samples

_DIGITS = ListedColormap(DIGIT_COLOURS, name="digits")

__all__ = ["plot_against_latent_size", "plot_sample_quality", "plot_rate_distortion",
           "plot_model_rows", "plot_latent_pca", "LatentPCA", "latent_pca"]

Report = dict[str, Any]


def _errorbar(ax: Any, x: list[float], reports: list[Report], path: tuple[str, ...],
              se: tuple[str, ...] | None, **kw: Any) -> None:
    def get(r: Report, keys: tuple[str, ...]) -> float:
        for key in keys:
            r = r[key]
        return float(r)

    y = [get(r, path) for r in reports]
    err = [get(r, se) for r in reports] if se else None
    kw.setdefault("marker", "o")
    ax.errorbar(x, y, yerr=err, capsize=3, **kw)


def plot_against_latent_size(vae: dict[int, Report], ae: dict[int, Report]) -> Figure:
    """Four panels against the latent size D (log scale): reconstruction error at the code
    (VAE and AE), KL, importance-weighted log-likelihood, active units. Error bars: ±1 SE."""
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6), layout="constrained")
    dv, da = sorted(vae), sorted(ae)
    rv, ra = [vae[d] for d in dv], [ae[d] for d in da]
    _errorbar(axes[0], dv, rv, ("reconstruction_at_mean", "mean"),
              ("reconstruction_at_mean", "se"), label="VAE (decoded μ)",
              color=SERIES_COLOURS[0])
    _errorbar(axes[0], da, ra, ("reconstruction_at_mean", "mean"),
              ("reconstruction_at_mean", "se"), label="autoencoder", color=SERIES_COLOURS[1],
              marker="s")  # told apart by shape as well as colour
    axes[0].set_title("reconstruction error")
    axes[0].set_ylabel("squared error per image (sum of 784 pixels)")
    axes[0].legend(fontsize=9)
    _errorbar(axes[1], dv, rv, ("test", "kl"), ("test_se", "kl"), label="KL")
    axes[1].set_title("KL(q(z|x) ‖ p(z)), the rate")
    axes[1].set_ylabel("nats per image")
    iw = [r for r in rv if "iw_log_likelihood" in r]
    if iw:
        _errorbar(axes[2], [d for d, r in zip(dv, rv, strict=True) if "iw_log_likelihood" in r],
                  iw, ("iw_log_likelihood", "nats_per_image"), ("iw_log_likelihood", "se"))
        axes[2].set_title(f"log-likelihood, k = {iw[0]['iw_log_likelihood']['k']}")
    axes[2].set_ylabel("nats per image (Gaussian density)")
    axes[3].bar([str(d) for d in dv], [r["active_units"]["count"] for r in rv], color="C0",
                label="active")
    axes[3].plot([str(d) for d in dv], dv, "k_", ms=30, label="D (all units)")
    axes[3].set_title("active units (Var μ > 0.01)")
    axes[3].legend(fontsize=9)
    for ax in axes[:3]:
        ax.set_xscale("log", base=2)
        ax.set_xticks(dv, [str(d) for d in dv])
    for ax in axes:
        ax.set_xlabel("latent size D")
    return finish_figure(fig)


def plot_sample_quality(rows: dict[str, dict[int, dict[str, float]]]) -> Figure:
    """Fréchet distance, classifier confidence and class entropy of prior samples against D,
    one line per sampler (e.g. ``{"VAE, N(0, I)": {2: scores, 4: ...}, ...}``)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), layout="constrained")
    keys = (("frechet", "Fréchet distance to the test images\n(lower is better)"),
            ("confidence", "classifier's mean confidence"),
            ("class_entropy", "entropy of the predicted classes (nats)"))
    for i, (label, by_d) in enumerate(rows.items()):
        ds = sorted(by_d)
        for ax, (key, _) in zip(axes, keys, strict=True):
            ax.plot(ds, [by_d[d][key] for d in ds], "-", marker="os^D"[i % 4],
                    color=SERIES_COLOURS[i % 4], label=label)  # shape as well as colour
    for ax, (_key, title) in zip(axes, keys, strict=True):
        ax.set_xscale("log", base=2)
        ds = sorted({d for by_d in rows.values() for d in by_d})
        ax.set_xticks(ds, [str(d) for d in ds])
        ax.set_xlabel("latent size D")
        ax.set_title(title)
    axes[0].set_yscale("log")
    axes[2].axhline(np.log(10), color="grey", ls=":", label="log 10: every digit equally")
    axes[2].legend(fontsize=9)
    ends = "; ".join(  # as notebook 07's table prints them
        f"{label}: {by_d[min(by_d)]['frechet']:.1f} to {by_d[max(by_d)]['frechet']:.1f}, "
        f"{by_d[min(by_d)]['confidence']:.3f} to {by_d[max(by_d)]['confidence']:.3f}"
        for label, by_d in rows.items())
    return finish_figure(fig, alt=(
        "Prior samples' Fréchet distance, classifier confidence and class entropy against the "
        "latent size D, one line per sampler; the first two from the smallest D to the "
        f"largest: {ends}"))


def _distortion(report: Report) -> float:
    """The loss's distortion: the squared error per image with ``z`` drawn from ``q``."""
    test = report["test"]
    return float(test.get("reconstruction", test["total"] - test["kl"]))


def plot_rate_distortion(reports: dict[float, Report]) -> Figure:
    """Distortion (the loss's squared error per image, ``z`` drawn from ``q``) against rate (KL)
    for each β, on linear axes, each point labelled with β and its active units. Through every
    model that keeps a code, a dashed segment of slope −β: where the optimum of
    ``distortion + β · rate`` touches the curve, its slope is −β."""
    fig, ax = plt.subplots(figsize=(7.0, 3.9), layout="constrained")
    betas = sorted(reports)
    x = [max(float(reports[b]["test"]["kl"]), 0.0) for b in betas]
    y = [_distortion(reports[b]) for b in betas]
    ax.plot(x, y, "o-", color="C0", label="trained models", zorder=3)
    span = max(x) - min(x) or 1.0
    first_tangent = True
    for b, xi, yi in zip(betas, x, y, strict=True):
        if xi < 0.01 * span:  # no code: no tangent to draw
            continue
        half = min(0.07 * span, 0.12 * (max(y) - min(y)) / b)  # short on the steep ones
        ax.plot([xi - half, xi + half], [yi + b * half, yi - b * half], "--", color="C1",
                lw=1.5, label="slope −β" if first_tangent else None)
        first_tangent = False
    groups: list[list[float]] = []  # betas whose points coincide share one label
    for b, xi, yi in zip(betas, x, y, strict=True):
        for group in groups:
            g = betas.index(group[0])
            if abs(x[g] - xi) < 0.05 and abs(y[g] - yi) < 0.5:
                group.append(b)
                break
        else:
            groups.append([b])
    for group in groups:
        first = betas.index(group[0])
        au = reports[group[0]]["active_units"]
        names = ", ".join(f"{b:g}" for b in group)
        right = x[first] > 0.8 * max(x)
        ax.annotate(f"β={names}: {au['count']}/{au['of']} active", (x[first], y[first]),
                    textcoords="offset points", xytext=(-4, -10) if right else (8, 6),
                    fontsize=10, ha="right" if right else "left",
                    va="top" if right else "bottom")  # the rightmost label below its point
    ax.set_xlim(min(x) - 0.05 * span, max(x) + 0.05 * span)
    ax.set_ylim(0, 1.15 * max(y))
    ax.set_xlabel("rate: KL per image (nats)")
    ax.set_ylabel("distortion: squared error\nper image, z drawn from q")
    ax.set_title("the β trade-off (VAE, D = 16)")
    ax.legend(loc="upper right", fontsize=9)
    points = "; ".join(f"β = {', '.join(f'{b:g}' for b in group)} at ({x[i]:.1f}, {y[i]:.1f}), "
                       f"{reports[group[0]]['active_units']['count']} active"
                       for group in groups for i in [betas.index(group[0])])
    return finish_figure(fig, alt=(
        f"The β trade-off: {len(betas)} trained models at (rate in nats, distortion), with "
        f"dashed segments of slope −β: {points}"))


def _grid(images: Tensor, nrow: int) -> np.ndarray:
    return make_grid(images.float().clamp(0, 1), nrow=nrow, padding=2, pad_value=0.0)[0].numpy()


def plot_model_rows(models: dict[str, nn.Module], images: Tensor, n_samples: int = 10,
                    seed: int = 0, gaussians: dict[str, tuple[Tensor, Tensor]] | None = None
                    ) -> Figure:
    """One row per model: the reconstructions of ``images`` (left) and ``n_samples`` decoded
    prior samples (right; ``z ~ N(0, I)``, or ``gaussians[label]`` where given). The first row
    shows the originals."""
    n = len(images)
    fig, axes = plt.subplots(len(models) + 1, 2, figsize=(0.62 * (n + n_samples) + 1.8,
                                                           0.75 * (len(models) + 1) + 0.5),
                             layout="constrained", squeeze=False,
                             gridspec_kw={"width_ratios": [n, n_samples]})
    axes[0, 0].imshow(_grid(images, n), cmap="binary", vmin=0, vmax=1)
    axes[0, 0].set_ylabel("originals", rotation=0, ha="right", va="center", fontsize=9)
    axes[0, 0].set_title("test images and their reconstructions", fontsize=10)
    axes[0, 1].set_title("decoded prior samples", fontsize=10)
    for row, (label, model) in enumerate(models.items(), start=1):
        axes[row, 0].imshow(_grid(reconstruct(model, images), n), cmap="binary", vmin=0, vmax=1)
        gaussian = (gaussians or {}).get(label)
        samples = decode_prior_samples(model, n_samples, seed=seed, gaussian=gaussian)
        axes[row, 1].imshow(_grid(samples, n_samples), cmap="binary", vmin=0, vmax=1)
        axes[row, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 1].axis("off")
    return finish_figure(fig, alt=(
        f"{n} test images, then one row per model ({', '.join(models)}): its reconstructions "
        f"of those images, and {n_samples} images decoded from prior samples"))


@dataclass(frozen=True)
class LatentPCA:
    """One model's posterior means projected on their first two principal components.

    Attributes:
        xy: the projected means, ``[N, 2]``; labels: their digits, ``[N]``;
        variance: the total variance of the means (the prior's codes would have D);
        shares: the shares of that variance along PC 1 and PC 2.
    """

    xy: Tensor
    labels: Tensor
    variance: float
    shares: tuple[float, float]

    def __str__(self) -> str:
        return (f"variance of μ {self.variance:.3g}; PCs: {100 * self.shares[0]:.0f} % + "
                f"{100 * self.shares[1]:.0f} %")


def latent_pca(models: dict[str, nn.Module], loader: Any,
               max_items: int = 2000) -> dict[str, LatentPCA]:
    """The posterior means of the first ``max_items`` images of ``loader`` under each model,
    on their first two principal components (:class:`LatentPCA`). Print it, then draw it with
    :func:`plot_latent_pca`."""
    found = {}
    for label, model in models.items():
        codes, labels = collect_latents(model, loader, max_items=max_items)
        centred = codes.double() - codes.double().mean(0)
        if centred.abs().max() < 1e-9:  # a collapsed code: every image at one point
            xy, share = torch.zeros(len(codes), 2), [0.0, 0.0]
        else:
            _, s, v = torch.linalg.svd(centred, full_matrices=False)
            xy = (centred @ v[:2].T).float() if v.shape[0] > 1 else torch.cat(
                [centred @ v[:1].T, torch.zeros(len(codes), 1)], 1).float()
            share = (s.square() / s.square().sum())[:2].tolist() + [0.0]
        found[label] = LatentPCA(xy, labels, float(centred.square().sum(1).mean()),
                                 (share[0], share[1]))
    return found


def plot_latent_pca(pca: dict[str, LatentPCA] | dict[str, nn.Module], loader: Any = None,
                    max_items: int = 2000, limit: float = 4.0) -> Figure:
    """The posterior means of test images, projected on their first two principal components,
    coloured by digit; one panel per model (a map of a latent space of any size). Pass what
    :func:`latent_pca` returns, or the models and a ``loader`` to compute it here.

    Every panel has the same axes, ``±limit`` (the prior's scale), so a collapsed code shows as
    a dot in the middle instead of being blown up to fill its panel; the title gives the total
    variance of the means (the prior's codes would have D).
    """
    if not all(isinstance(v, LatentPCA) for v in pca.values()):
        pca = latent_pca(pca, loader, max_items)  # type: ignore[arg-type]
    fig, axes = plt.subplots(1, len(pca), figsize=(3.3 * len(pca), 3.5),
                             layout="constrained", squeeze=False)
    for ax, (label, found) in zip(axes[0], pca.items(), strict=True):  # type: ignore[union-attr]
        xy, labels = found.xy, found.labels
        scatter = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap=_DIGITS, s=3, vmin=-0.5,
                             vmax=9.5)
        for digit, cx, cy in class_medians(xy, labels):  # each class named, not by colour
            if abs(cx) <= limit and abs(cy) <= limit:
                ax.text(cx, cy, str(digit), ha="center", va="center", fontsize=9,
                        fontweight="bold", color="black", clip_on=True,
                        path_effects=[patheffects.withStroke(linewidth=2, foreground="white")])
        ax.set_title(f"{label}\n{found}", fontsize=9)
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
        ax.set_aspect("equal")
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
    fig.colorbar(scatter, ax=axes[0, -1], ticks=range(10), label="digit")
    first = next(iter(pca.values()))
    return finish_figure(fig, alt=(
        f"Posterior means of {len(first.labels):,} test images on their first two principal "
        "components, coloured and labelled by digit: " + "; ".join(
            f"{label}, variance {found.variance:.3g}, PCs {100 * found.shares[0]:.0f} % + "
            f"{100 * found.shares[1]:.0f} %" for label, found in pca.items())))  # type: ignore
