"""Figures for the notebooks and the command line.

Every function returns a ``matplotlib.figure.Figure``, never calls pyplot's ``show``, and saves to
``path`` when one is given. The returned figure is detached from pyplot (``plt.close``), so in
Jupyter it shows exactly once, as the value of the cell's last expression (``fig``); without
that, the inline backend would also show it on its own and it would appear twice. The figure
stays fully usable (``fig.suptitle(...)``, ``fig.savefig(...)``). Image grids are built with
``torchvision.utils.make_grid``.
Models are used through ``model.embed`` (the deterministic code: ``mu`` for a VAE, ``z`` for an
autoencoder) and ``model.decode``, so the same functions work for both models.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, MaxNLocator
from torch import Tensor, nn
from torch.utils.data import DataLoader

from .evaluate import collect_latents, inference, quantile_grid, reconstruct
from .history import History
from .losses import kl_divergence

__all__ = [
    "finish_figure",
    "smallest_text_pt",
    "plot_training_loss",
    "describe_trends",
    "describe_medians",
    "class_medians",
    "short_number",
    "plot_recipes",
    "plot_images",
    "plot_reconstructions",
    "plot_latent_space",
    "plot_samples",
    "plot_decoded_points",
    "plot_latent_manifold",
    "plot_interpolation",
    "plot_bce_vs_mse",
    "plot_kl_surface",
    "plot_sample_histogram",
    "plot_ink_histogram",
    "plot_code_histograms",
    "DIGIT_COLOURS",
    "SERIES_COLOURS",
    "MAX_ALT",
    "MIN_TEXT_PT",
    "describe_figure",
]

#: The ten digit classes' colours, digit ``k`` at index ``k``: Paul Tol's "muted" scheme (SRON,
#: "Colour schemes and templates", 2021), its pale grey replaced by black so that the dots show
#: on white. matplotlib's tab10, used before, loses pairs of digits to colour blindness (1 and
#: 2 under protanopia, 6 and 9 under deuteranopia). Every pair of these stays at least 11.8
#: apart in CAM02-UCS under simulated protanopia, deuteranopia and tritanopia (measured with
#: colorspacious: :func:`helper_lib.tools.accessibility.cvd_separation`); the figures also
#: write each class's digit on its cluster, so the colour is never the only carrier.
DIGIT_COLOURS = ("#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677",
                 "#882255", "#AA4499", "#000000")
#: Up to four series told apart by colour (Okabe and Ito's palette: blue, vermilion, bluish
#: green, orange), at least 11.7 apart in CAM02-UCS under the same three simulations.
SERIES_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#E69F00")

PathLike = str | os.PathLike | None
_TITLES = {"total": "combined loss", "reconstruction": "reconstruction loss",
           "kl": "KL divergence", "mse": "MSE per pixel"}
_YLABELS = {"total": "per image", "reconstruction": "per image (sum over pixels)",
            "kl": "nats per image", "mse": "mean over pixels"}


def finish_figure(fig: Figure, path: PathLike = None, alt: str | None = None) -> Figure:
    """Save ``fig`` to ``path`` (if given) and close it, so that a notebook shows it once, as
    the cell's value. Every figure function of the course ends with it.

    The figure also says what it shows: ``alt`` (or, without it, :func:`describe_figure`'s
    account of the data drawn) becomes its alt text, ``fig.alt_text``, which a notebook keeps
    with the picture (the output's ``image/png`` metadata ``alt``, and its ``text/plain`` in
    place of ``<Figure size ...>``) and the course site writes into the ``<img>``'s ``alt``.
    """
    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)  # shown once, as a cell's value, not again by the inline backend
    fig.alt_text = _short(alt or describe_figure(fig))
    fig.smallest_text_pt = smallest_text_pt(fig)

    def mimebundle(include: object = None, exclude: object = None) -> tuple[dict, dict]:
        # IPython's own formatter draws the PNG; this adds what the picture shows, and the
        # size of its smallest text (tests/test_smoke_figures.py holds it to 9 pt)
        return {"text/plain": fig.alt_text}, {"image/png": {
            "alt": fig.alt_text, "smallest_text_pt": fig.smallest_text_pt}}

    fig._repr_mimebundle_ = mimebundle
    return fig


#: The longest alt text (screen readers read it at once; details belong in the caption).
MAX_ALT = 300
#: The smallest text a figure may carry, in points: a notebook shows a figure at 100 dpi, one
#: image pixel to one CSS pixel, so 9 pt comes out at 9.4 pt on the page (issue #34).
MIN_TEXT_PT = 9.0


def smallest_text_pt(fig: Figure) -> float | None:
    """The size of the smallest visible text drawn on ``fig``, in points (``None``: no text):
    titles, labels, tick labels, legends, annotations."""
    from matplotlib.text import Text

    sizes = [float(t.get_fontsize()) for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip()]
    return min(sizes) if sizes else None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ALT else text[:MAX_ALT - 1].rsplit(" ", 1)[0] + "…"


def _plain(label: str) -> str:
    """A label as words: mathtext's ``$\\mu$`` as ``μ``, ``$z_1$`` as ``z1``."""
    greek = {"mu": "μ", "sigma": "σ", "beta": "β", "lambda": "λ", "theta": "θ", "phi": "φ"}
    label = re.sub(r"\\(mu|sigma|beta|lambda|theta|phi)", lambda m: greek[m.group(1)], label)
    label = re.sub(r"\\hat\{?(\w)\}?", "\\1\u0302", label)  # x̂: x and a combining hat
    label = re.sub(r"\^\{?2\}?", "²", label.replace("\\mid", "|"))  # not "0.52" for 0.5²
    label = re.sub(r"\\(log|exp|ln) *", r"\1 ", label)
    label = re.sub(r"\\[a-zA-Z]+", "", label)
    return re.sub(r"[${}_^]", "", label).strip()


def short_number(value: float) -> str:
    """A number as alt text writes it: three significant digits, without an exponent from 100
    up (1,158, not 1.16e+03)."""
    return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"


def describe_figure(fig: Figure) -> str:
    """What ``fig`` shows, read from what is drawn on it, for its alt text: each panel's title,
    each labelled line's first and last value (or, for a bump that ends where it starts, such
    as a density, its top and where it is), how many points a scatter has, the images and
    bars, in at most :data:`MAX_ALT` characters."""
    parts = []
    suptitle = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) else ""
    for ax in fig.axes:
        if not ax.get_visible() or ax.get_label() == "<colorbar>" or not (
                ax.lines or ax.collections or ax.images or ax.patches):
            continue
        title = _plain(ax.get_title()) or _plain(ax.get_ylabel()) or "a panel"
        items = []
        for line in ax.lines:
            y = np.asarray(line.get_ydata(), dtype=float)
            x = np.asarray(line.get_xdata(), dtype=float)
            if len(x) != len(y):
                x = np.arange(len(y), dtype=float)
            keep = np.isfinite(y)
            x, y = x[keep], y[keep]
            label = _plain(str(line.get_label()))
            if len(y) > 1 and not str(line.get_label()).startswith("_") and np.ptp(y) > 0:
                if abs(y[-1] - y[0]) < 0.1 * np.ptp(y):  # a bump (a density): its top
                    k = int(np.argmax(np.abs(y - y[0])))
                    where = _plain(ax.get_xlabel()) or "x"
                    at = short_number(round(float(x[k]), 2))
                    items.append(f"{label} {'peaks at' if y[k] > y[0] else 'dips to'} "
                                 f"{short_number(y[k])} at {where} = {at}")
                else:
                    items.append(f"{label} from {short_number(y[0])} to {short_number(y[-1])}")
        points = sum(len(c.get_offsets()) for c in ax.collections
                     if type(c).__name__ == "PathCollection")
        if points > 1:
            items.append(f"{points:,} points")
        if any(type(c).__name__ == "QuadContourSet" for c in ax.collections):
            items.append("a contour map")
        if ax.images:
            items.append(f"{len(ax.images)} image" + ("s" if len(ax.images) > 1 else ""))
        bars = [p for p in ax.patches if type(p).__name__ == "Rectangle"]
        if len(bars) > 1:
            items.append(f"{len(bars)} bars")
        x = _plain(ax.get_xlabel())
        parts.append(f"{title}" + (f" (against {x})" if x and (ax.lines or points) else "")
                     + (": " + "; ".join(items) if items else ""))
    text = ". ".join((p[0].upper() if p[0].isascii() else p[0]) + p[1:] for p in parts if p)
    return (f"{suptitle}. " if suptitle else "") + (text or "An empty figure")


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return fig, ax


def _running_average(values: np.ndarray, window: int) -> np.ndarray:
    window = max(1, min(window, len(values)))
    return np.convolve(values, np.ones(window) / window, mode="valid")


def _trend(values: np.ndarray, window: int) -> str:
    """The running mean of ``values`` over ``window`` batches in words: where it starts, a dip
    below (or a peak above) both ends worth naming, and where it ends."""
    avg = _running_average(values, window)
    if len(avg) < 2:
        return f"one running mean, {short_number(avg[0])}" if len(avg) else "no values"
    start, end, span = avg[0], avg[-1], np.ptp(avg)
    words = [f"starts at {short_number(start)}"]
    low, high = int(np.argmin(avg)), int(np.argmax(avg))
    turns = []  # batch numbers count from 1, at the window's end; in the order they happen
    if avg[low] < min(start, end) - 0.1 * span:
        turns.append((low, f"dips to {short_number(avg[low])} at batch {low + window:,}"))
    if avg[high] > max(start, end) + 0.1 * span:
        turns.append((high, f"peaks at {short_number(avg[high])} at batch {high + window:,}"))
    return ", ".join(words + [w for _, w in sorted(turns)] + [f"ends at {short_number(end)}"])


def _window(history: History, key: str, averaging_iterations: int) -> int:
    return min(averaging_iterations, max(1, len(history.batch[key]) // 5))


def _trends(history: History, keys: Sequence[str],
            averaging_iterations: int) -> list[tuple[str, int, str]]:
    """``(title, window, the running mean in words)`` for each loss term of ``keys``."""
    found = []
    for key in keys:
        window = _window(history, key, averaging_iterations)
        values = np.asarray(history.batch[key], dtype=float)
        title = _TITLES.get(key, key)
        found.append((f"{title[0].upper()}{title[1:]}", window,
                      _trend(values[np.isfinite(values)], window)))
    return found


def describe_trends(history: History, keys: str | Sequence[str] | None = None,
                    averaging_iterations: int = 100) -> str:
    """The running means that :func:`plot_training_loss` draws, in words, one line per loss
    term, e.g. ``"KL divergence (running mean of 100 batches): starts at 1.5, dips to 0.92 at
    batch 310, ends at 4.94"``. The figure's alt text says the same; print it beside the
    figure."""
    keys = [keys] if isinstance(keys, str) else list(keys or history.names)
    return "\n".join(f"{title} (running mean of {window} batches): {words}"
                     for title, window, words in _trends(history, keys, averaging_iterations))


def plot_training_loss(
    history: History,
    keys: str | Sequence[str] | None = None,
    averaging_iterations: int = 100,
    path: PathLike = None,
) -> Figure:
    """Per-batch training loss with a running average, one panel per loss component.

    The bottom axis counts iterations (batches), the top axis counts epochs. The y-range is
    set from the running average after the first few hundred steps, so the large initial
    losses do not squash the rest of the curve (the lecture's choice).
    """
    keys = [keys] if isinstance(keys, str) else list(keys or history.names)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.6), layout="constrained",
                             squeeze=False)
    per_epoch = history.batches_per_epoch[0] if history.batches_per_epoch else 1
    for ax, key in zip(axes[0], keys, strict=True):
        values = np.asarray(history.batch[key], dtype=float)
        steps = np.arange(1, len(values) + 1)
        ax.plot(steps, values, lw=0.5, alpha=0.35, color="tab:blue", label="per batch")
        window = _window(history, key, averaging_iterations)
        avg = _running_average(values, window)
        ax.plot(steps[window - 1:], avg, lw=1.6, color="tab:orange",
                label=f"running mean ({window} batches)")
        # y-range: the bulk of the per-batch values once the first 10% of training is over,
        # widened to the whole running mean after its first 1% (so that early trends, such as
        # the KL term first falling and then rising, stay visible, but the huge losses of the
        # very first steps do not squash the plot)
        tail = values[len(values) // 10:]
        tail = tail[np.isfinite(tail)]
        early_avg = avg[len(avg) // 100:]
        early_avg = early_avg[np.isfinite(early_avg)]
        if len(tail) and len(early_avg):
            lo, hi = np.percentile(tail, [0.5, 99.5])
            lo, hi = min(lo, early_avg.min()), max(hi, early_avg.max())
            pad = 0.05 * (hi - lo) + 1e-12
            ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlabel("iteration")
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 10000 -> 10k
        ax.set_ylabel(_YLABELS.get(key, key))
        ax.set_title(_TITLES.get(key, key), pad=8)
        top = ax.secondary_xaxis("top", functions=(lambda s: s / per_epoch,
                                                   lambda e: e * per_epoch))
        top.xaxis.set_major_locator(MaxNLocator(6, integer=True))
        top.set_xlabel("epoch")
        rising = len(early_avg) > 1 and early_avg[-1] > early_avg[len(early_avg) // 2]
        ax.legend(fontsize=9, loc="lower right" if rising else "upper right")
    epochs = len(history.batches_per_epoch)
    trends = _trends(history, keys, averaging_iterations)
    windows = sorted({window for _, window, _ in trends})
    return finish_figure(fig, path, alt=f"Training loss per batch over {epochs} epoch"
                         f"{'s' if epochs != 1 else ''} ({sum(history.batches_per_epoch):,} "
                         f"batches), running means of {' or '.join(map(str, windows))} batches. "
                         + ". ".join(f"{title} {words}" for title, _, words in trends))


def plot_recipes(
    runs: dict[str, History],
    test_loss: dict[str, float] | None = None,
    constant_lr: dict[str, float] | None = None,
    path: PathLike = None,
) -> Figure:
    """Training recipes side by side: the loss per epoch (left) and the learning rate (right).

    Args:
        runs: label -> :class:`History` of a run (first loss component is plotted).
        test_loss: label -> final test-set loss, drawn as a marker after the last epoch.
        constant_lr: label -> rate, for histories written before the rate was recorded
            (``History.lr`` empty).
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    for i, (label, history) in enumerate(runs.items()):
        colour = f"C{i}"
        name = history.names[0]
        epochs = np.arange(1, history.epochs + 1)
        left.plot(epochs, history.train[name], "o-", ms=3, color=colour,
                  label=f"{label}: {history.epochs} epochs")
        if test_loss and label in test_loss:
            left.plot([history.epochs], [test_loss[label]], "*", ms=12, color=colour,
                      label=f"{label}, test set: {test_loss[label]:.2f}")
        steps = np.arange(sum(history.batches_per_epoch)) / max(history.batches_per_epoch[0], 1)
        if history.lr:
            right.plot(steps[: len(history.lr)], history.lr, color=colour, label=label)
        elif constant_lr and label in constant_lr:
            right.plot([0, history.epochs], [constant_lr[label]] * 2, color=colour, label=label)
    finals = [h.train[h.names[0]][-1] for h in runs.values() if h.epochs]
    if finals:  # zoom in on the end, where the recipes are compared
        lo = min(finals + list((test_loss or {}).values()))
        left.set_ylim(lo - 1.5, lo + 12)
    left.set_xlabel("epoch")
    left.set_ylabel("training loss, mean of the epoch's batches")
    left.set_title("loss per epoch (star: test set after the last epoch)", pad=8)
    left.legend(fontsize=9)
    right.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))  # 0.005 -> 5 x 1e-3
    right.set_xlabel("epoch")
    right.set_ylabel("Adam's learning rate")
    right.set_title("learning rate", pad=8)
    right.legend(fontsize=9)
    return finish_figure(fig, path)


def plot_images(
    images: Tensor,
    nrow: int = 10,
    title: str | None = None,
    ax: Axes | None = None,
    path: PathLike = None,
) -> Figure:
    """Show ``[N, 1, 28, 28]`` images in [0, 1] as one grid (``make_grid``), ``nrow`` per row."""
    return finish_figure(_images_figure(images, nrow, title, ax), path)


def _images_figure(images: Tensor, nrow: int, title: str | None = None,
                   ax: Axes | None = None) -> Figure:
    """:func:`plot_images`' figure, not yet finished, for a caller that adds to it."""
    rows = (len(images) + nrow - 1) // nrow
    cell = 2.4 if len(images) == 1 else 0.6  # inches per image; a lone digit is drawn larger
    fig, ax = _new_axes(ax, (max(2.0, cell * min(nrow, len(images))),
                             max(1.0, cell * rows) + 0.4))
    _draw_images(ax, images, nrow)
    if title:
        ax.set_title(title)
    return fig


def _draw_images(ax: Axes, images: Tensor, nrow: int) -> None:
    """``[N, 1, 28, 28]`` images in [0, 1] as one ``make_grid`` grid on ``ax``, no axes."""
    from torchvision.utils import make_grid  # imported here: torchvision takes 1.5 s to import

    # ink is dark on white ("binary" maps 1 to black), so pad with 0 for white gaps
    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=2,
                     pad_value=0.0)
    ax.imshow(grid[0].numpy(), cmap="binary", vmin=0, vmax=1)
    ax.set_axis_off()


def plot_reconstructions(
    model: nn.Module, images: Tensor, n: int = 15, path: PathLike = None
) -> Figure:
    """Originals (top row) over their reconstructions (bottom row), ``n`` of them.

    Reconstructions decode the deterministic code (``mu`` for a VAE), see
    :func:`helper_lib.evaluate.reconstruct`.
    """
    x = images[:n]
    x_hat = reconstruct(model, x)
    fig = _images_figure(torch.cat([x.cpu(), x_hat]), nrow=len(x),
                         title="top: original    bottom: reconstruction")
    return finish_figure(fig, path)


def plot_latent_space(
    model: nn.Module,
    loader: DataLoader | None = None,
    max_items: int | None = 10_000,
    ax: Axes | None = None,
    lims: tuple[float, float, float, float] | None = None,
    title: str | None = None,
    path: PathLike = None,
    latents: tuple[Tensor, Tensor] | None = None,
    legend: bool = True,
    centroid_labels: bool = True,
) -> Figure:
    """Scatter of the 2-D codes (``mu`` for a VAE), coloured by label, with a legend.

    Both axes have the same scale, so the prior's circles look round; the legend sits outside
    the axes, where it hides no codes.

    Args:
        model, loader: the codes are ``collect_latents(model, loader, max_items)``.
        lims: ``(xmin, xmax, ymin, ymax)``; pass the same limits to compare two models.
        ax: draw into this axes (e.g. one panel of a side-by-side figure). Its figure is
            returned and, like every figure here, detached from pyplot: end the cell with it.
        latents: codes you already have, ``(codes [N, 2], labels [N])`` as returned by
            ``collect_latents``; then ``loader`` is not needed and nothing is encoded again.
        legend: ``False`` leaves out the legend (e.g. on all but one of several panels).
        centroid_labels: write each class's digit at the median of its codes, for the classes
            whose median lies inside the view (clipped to the axes).
    """
    if latents is not None:
        codes, labels = (torch.as_tensor(t).cpu() for t in latents)
        if len(codes) != len(labels):
            raise ValueError(f"latents: {len(codes)} codes but {len(labels)} labels")
    elif loader is not None:
        codes, labels = collect_latents(model, loader, max_items=max_items)
    else:
        raise ValueError("plot_latent_space needs a loader to encode, or latents=(codes, labels)")
    if codes.shape[1] != 2:
        raise ValueError(f"plot_latent_space needs a 2-D latent space, got {codes.shape[1]}-D")
    fig, ax = _new_axes(ax, (5.6, 5.0))
    for digit in labels.unique().tolist():
        sel = labels == digit
        ax.scatter(codes[sel, 0], codes[sel, 1], s=2, alpha=0.5,
                   color=DIGIT_COLOURS[int(digit) % 10], label=str(digit), rasterized=True)
    if legend:
        ax.legend(title="label", markerscale=5, fontsize=9, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    ax.axhline(0, color="0.6", lw=0.5)
    ax.axvline(0, color="0.6", lw=0.5)
    if lims is not None:
        ax.set_xlim(lims[0], lims[1])
        ax.set_ylim(lims[2], lims[3])
    (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    medians = [m for m in class_medians(codes, labels)  # a label outside the view (a zoom)
               if x0 <= m[1] <= x1 and y0 <= m[2] <= y1]  # would widen the figure, not help
    if centroid_labels:  # many small translucent dots blend; a label per class says which is which
        for digit, cx, cy in medians:
            ax.text(cx, cy, str(digit), ha="center", va="center", clip_on=True,
                    fontsize=11, fontweight="bold", color="black",  # read, whatever the colours
                    path_effects=[patheffects.withStroke(linewidth=2.5, foreground="white")])
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title(title or f"latent space ({type(model).__name__})")
    shown = _medians_text(medians)
    title = _plain(ax.get_title())
    return finish_figure(fig, path, alt=(
        f"{title[0].upper()}{title[1:]}: {len(codes):,} images at their 2-D codes, coloured and "
        "labelled by digit; " + (f"the digits' medians: {shown}" if shown else
                                 "no digit's median lies in this view")))


def describe_medians(codes: Tensor, labels: Tensor,
                     view: tuple[float, float, float, float] | None = None) -> str:
    """Each class's median code, as :func:`plot_latent_space` labels it on the map and its alt
    text lists it: ``"0 (0.8, 1.6), 1 (0.2, -1.9), …"`` for ``codes [N, 2]`` and ``labels [N]``;
    with ``view = (xmin, xmax, ymin, ymax)`` only the medians inside it. Print it beside the
    map."""
    return _medians_text([m for m in class_medians(codes, labels) if view is None
                          or (view[0] <= m[1] <= view[1] and view[2] <= m[2] <= view[3])])


def class_medians(codes: Tensor, labels: Tensor) -> list[tuple[int, float, float]]:
    """``(label, median of z1, median of z2)`` for each class of ``codes [N, 2]`` and
    ``labels [N]``, in label order: where the maps write each digit."""
    codes, labels = torch.as_tensor(codes).cpu(), torch.as_tensor(labels).cpu()
    return [(int(d), *codes[labels == d].median(dim=0).values.tolist()[:2])
            for d in labels.unique().tolist()]


def _medians_text(medians: Sequence[tuple[int, float, float]]) -> str:
    return ", ".join(f"{d} ({x:.1f}, {y:.1f})" for d, x, y in medians)


def plot_decoded_points(
    model: nn.Module, z: Tensor | Sequence[Sequence[float]], nrow: int = 10,
    title: str | None = None, ax: Axes | None = None, path: PathLike = None,
) -> Figure:
    """Decode the latent points ``z`` (``[N, D]``) and show the images in a grid."""
    images = _decode(model, z)
    return plot_images(images, nrow=min(nrow, len(images)), title=title, ax=ax, path=path)


def _decode(model: nn.Module, z: Tensor | Sequence[Sequence[float]]) -> Tensor:
    """``model.decode`` of the points ``z`` (``[N, D]``, or one point ``[D]``):
    ``[N, 1, 28, 28]`` on the CPU."""
    z = torch.as_tensor(z, dtype=torch.float32)
    if z.dim() == 1:
        z = z.unsqueeze(0)
    with inference(model, None) as device:
        return model.decode(z.to(device)).float().cpu()


def plot_samples(
    model: nn.Module, n: int = 100, nrow: int = 10, seed: int = 0,
    title: str | None = "decoded samples $z \\sim N(0, I)$", ax: Axes | None = None,
    path: PathLike = None,
) -> Figure:
    """Decode ``n`` draws ``z ~ N(0, I)`` (seeded) into a grid of ``nrow`` columns."""
    z = torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    return plot_decoded_points(model, z, nrow=nrow, title=title, ax=ax, path=path)


def plot_latent_manifold(
    model: nn.Module, n: int = 15, quantiles: tuple[float, float] = (0.05, 0.95),
    path: PathLike = None,
) -> Figure:
    """For a 2-D latent space: decode an ``n x n`` grid of points placed at evenly spaced
    quantiles of N(0, 1) along each axis, so each image covers an equal share of prior mass.
    ``z_1`` grows to the right, ``z_2`` grows upwards."""
    if model.latent_dim != 2:
        raise ValueError("plot_latent_manifold needs latent_dim == 2")
    z = quantile_grid(n, quantiles)  # top row = largest z_2
    axis = z[:n, 0]
    fig = _images_figure(_decode(model, z), nrow=n)
    fig.set_size_inches(7.4, 7.4)
    ax = fig.axes[0]
    ax.set_axis_on()
    centres = [2 + 30 * i + 14 for i in range(n)]  # make_grid: 2 px padding around 28 px tiles
    every = 2 if n > 8 else 1
    ax.set_xticks(centres[::every], [f"{v:.2f}" for v in axis.tolist()[::every]], fontsize=9)
    ax.set_yticks(centres[::every], [f"{v:.2f}" for v in axis.flip(0).tolist()[::every]],
                  fontsize=9)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    share = (quantiles[1] - quantiles[0]) ** 2
    ax.set_title(f"decoder over N(0, 1) quantiles {quantiles[0]:.2f}..{quantiles[1]:.2f} per "
                 f"axis ({100 * share:.0f} % of the prior's mass)")
    return finish_figure(fig, path)


def plot_interpolation(
    model: nn.Module, x_a: Tensor, x_b: Tensor, steps: int = 10, path: PathLike = None,
    latents: tuple[Tensor, Tensor] | None = None,
) -> Figure:
    """Decode evenly spaced points on the line between the codes of two images.

    ``x_a``, ``x_b``: ``[1, 28, 28]`` or ``[1, 1, 28, 28]``. The top row shows the two original
    images at its ends and the ``steps`` decoded points between them; the first and last
    decoded panels are the reconstructions of the two endpoints. For a 2-D latent space,
    ``latents=(codes, labels)`` adds a map with the path drawn on it.
    """
    with inference(model, None) as device:
        pair = torch.stack([x_a.reshape(1, 28, 28), x_b.reshape(1, 28, 28)]).to(device)
        za, zb = model.embed(pair)
    t = torch.linspace(0, 1, steps, device=za.device).unsqueeze(1)
    z = ((1 - t) * za + t * zb).cpu()
    decoded = _decode(model, z)
    row = torch.cat([pair[:1].cpu(), decoded, pair[1:].cpu()])  # [steps + 2, 1, 28, 28]
    with_map = latents is not None and z.shape[1] == 2
    width = max(6.0, 0.62 * (steps + 2))
    fig = plt.figure(figsize=(width, 6.4 if with_map else 1.3), layout="constrained")
    if with_map:  # the strip on top, the map with the path below it
        strip_ax, map_ax = fig.subplots(2, 1, height_ratios=[1, 4.2])
        plot_latent_space(model, latents=latents, ax=map_ax, legend=False,
                          title="the path on the latent map")
        map_ax.plot(z[:, 0], z[:, 1], "k.-", lw=1.2, ms=5)
        map_ax.plot(z[[0, -1], 0], z[[0, -1], 1], "ko", ms=7, mfc="white")
    else:
        strip_ax = fig.subplots()
    _draw_images(strip_ax, row, nrow=len(row))
    strip_ax.set_title("original, then the decoded path, then the other original", fontsize=10)
    return finish_figure(fig, path)


def plot_bce_vs_mse(
    targets: Sequence[float] = (0.2, 0.4, 0.8), path: PathLike = None
) -> Figure:
    """Per-pixel BCE and squared error as a function of the prediction, for a few targets.

    Marks the value at prediction == target: zero for MSE, the target's entropy for BCE.
    """
    p = torch.linspace(0.005, 0.995, 400)
    fig, (ax_b, ax_m) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    for i, y in enumerate(targets):
        color = plt.get_cmap("tab10")(i)
        yy = torch.full_like(p, y)
        bce = torch.nn.functional.binary_cross_entropy(p, yy, reduction="none")
        at = torch.nn.functional.binary_cross_entropy(torch.tensor(y), torch.tensor(y)).item()
        # the value at the minimum goes into the legend: a label on the plot cut the curves
        ax_b.plot(p, bce, color=color, label=f"target {y} (minimum {at:.3f})")
        ax_b.plot([y], [at], "o", color=color)
        ax_m.plot(p, (p - y) ** 2, color=color, label=f"target {y}")
        ax_m.plot([y], [0.0], "o", color=color)
    ax_b.set(title="binary cross-entropy", xlabel="prediction $\\hat{x}$", ylabel="loss",
             ylim=(0, 2.5))
    ax_m.set(title="squared error", xlabel="prediction $\\hat{x}$", ylabel="loss")
    ax_b.legend(fontsize=9)
    ax_m.legend(fontsize=9)
    minima = ", ".join(
        f"{torch.nn.functional.binary_cross_entropy(torch.tensor(y), torch.tensor(y)).item():.3f}"
        f" (target {y})" for y in targets)
    return finish_figure(fig, path, alt=(
        "Loss against the prediction x̂ from 0 to 1, one curve per target. Binary cross-entropy: "
        f"each curve is lowest at its target, but not zero: {minima}. Squared error: one "
        "parabola for every target, shifted, zero at the target"))


def plot_kl_surface(
    mu_range: tuple[float, float] = (-3, 3), logvar_range: tuple[float, float] = (-4, 3),
    path: PathLike = None,
) -> Figure:
    """Contours of KL(N(mu, exp(logvar)) || N(0, 1)) for one latent dimension; the minimum
    (zero) sits at ``mu = 0, logvar = 0``."""
    mu = torch.linspace(*mu_range, 201)
    lv = torch.linspace(*logvar_range, 201)
    m, v = torch.meshgrid(mu, lv, indexing="xy")
    kl = kl_divergence(m.reshape(-1, 1), v.reshape(-1, 1)).reshape(m.shape)
    fig, ax = plt.subplots(figsize=(5.6, 4.4), layout="constrained")
    # colours up to 8 nats (the far corners, up to ~13, share the top colour), so the bowl
    # around the minimum gets most of the colour range; labelled contour lines give values
    cs = ax.contourf(m, v, kl, levels=np.linspace(0, 8, 33), cmap="viridis", extend="max")
    lines = ax.contour(m, v, kl, levels=[0.1, 0.5, 1, 2, 4], colors="white", linewidths=0.6)
    ax.clabel(lines, fmt="%g", fontsize=9)
    ax.plot([0], [0], "r*", ms=12, label="minimum: $\\mu=0$, $\\log\\sigma^2=0$")
    fig.colorbar(cs, ax=ax, label="KL divergence (nats)", ticks=range(9))
    ax.set(xlabel="$\\mu$", ylabel="$\\log \\sigma^2$", title="KL to N(0, 1), one dimension")
    ax.legend(loc="lower right", fontsize=9)
    return finish_figure(fig, path)


def plot_sample_histogram(
    samples: Tensor, mu: float, sigma: float, bins: int = 60, title: str | None = None,
    path: PathLike = None,
) -> Figure:
    """Histogram of 1-D ``samples`` against the density of N(mu, sigma^2)."""
    s = samples.detach().float().cpu().reshape(-1).numpy()
    fig, ax = plt.subplots(figsize=(5.6, 3.6), layout="constrained")
    ax.hist(s, bins=bins, density=True, alpha=0.6, label=f"{len(s):,} samples")
    xs = np.linspace(mu - 4 * sigma, mu + 4 * sigma, 300)
    pdf = np.exp(-0.5 * ((xs - mu) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    ax.plot(xs, pdf, "k", lw=1.5, label=f"N({mu:g}, {sigma:g}$^2$) density")
    ax.set(xlabel="z", ylabel="density", title=title or "samples vs. target density")
    ax.legend(fontsize=9)
    heading = _plain(ax.get_title())
    return finish_figure(fig, path, alt=(
        f"{heading[0].upper()}{heading[1:]}: a histogram of {len(s):,} samples in {bins} bars "
        f"(mean {s.mean():.3f}, sd {s.std(ddof=1):.3f}) drawn over the density curve of "
        f"N({mu:g}, {sigma:g}²)"))


def plot_ink_histogram(images: Tensor, bins: int = 51, path: PathLike = None) -> Figure:
    """Histogram of the grey values of all *ink* pixels (value > 0) in ``images [N, 1, 28, 28]``,
    coloured by band (< 0.1, 0.1 to 0.9, >= 0.9), with each band's share in the legend."""
    ink = images.detach().float().cpu().reshape(-1)
    ink = ink[ink > 0].numpy()
    fig, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
    edges = np.linspace(0, 1, bins + 1)
    counts, _ = np.histogram(ink, bins=edges)
    centres = (edges[:-1] + edges[1:]) / 2
    bands = [(0.0, 0.1, "C7", "faint (< 0.1)"), (0.1, 0.9, "C0", "grey (0.1 to 0.9)"),
             (0.9, 1.01, "C3", "near-black (≥ 0.9)")]
    for lo, hi, colour, name in bands:
        sel = (centres >= lo) & (centres < hi)
        share = ((ink >= lo) & (ink < hi)).mean()
        ax.bar(centres[sel], counts[sel] / len(ink), width=edges[1] - edges[0], color=colour,
               label=f"{name}: {100 * share:.1f} %")
    ax.set_yscale("log")
    ax.set_xlabel("pixel value (0 = background, 1 = full ink)")
    ax.set_ylabel("share of the ink pixels")
    ax.set_title(f"the {len(ink):,} ink pixels of {len(images):,} images", pad=8)
    ax.legend(fontsize=9, loc="upper center")
    return finish_figure(fig, path)


def plot_code_histograms(codes: Tensor, bins: int = 50, path: PathLike = None,
                         symbol: str = "\\mu") -> Figure:
    """One histogram per latent dimension of ``codes [N, D]`` (e.g. the posterior means), each
    against the N(0, 1) density of the prior, with the dimension's mean and standard deviation.
    ``symbol`` names the codes in the legend (``"z"`` for draws from the encoder).
    """
    c = codes.detach().float().cpu().numpy()
    d = c.shape[1]
    fig, axes = plt.subplots(1, d, figsize=(3.4 * d, 2.9), layout="constrained", squeeze=False)
    xs = np.linspace(-4, 4, 300)
    for j, ax in enumerate(axes[0]):
        ax.hist(c[:, j], bins=bins, range=(-4, 4), density=True, alpha=0.6, color="C0",
                label=f"${symbol}_{j + 1}$: mean {c[:, j].mean():.2f}, "
                      f"sd {c[:, j].std(ddof=1):.2f}")
        ax.plot(xs, np.exp(-0.5 * xs**2) / np.sqrt(2 * np.pi), "k", lw=1.3, label="N(0, 1)")
        ax.set_xlabel(f"$z_{j + 1}$")
        ax.legend(fontsize=9, loc="upper left")
    axes[0, 0].set_ylabel("density")
    name = _plain(f"${symbol}$")
    return finish_figure(fig, path, alt=(
        f"One histogram per dimension of {len(c):,} codes {name}, each over the N(0, 1) density "
        "of the prior: " + "; ".join(f"{name}{j + 1} mean {c[:, j].mean():.2f}, sd "
                                     f"{c[:, j].std(ddof=1):.2f}" for j in range(d))))
