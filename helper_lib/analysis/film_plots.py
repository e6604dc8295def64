"""The latent space forming, played: a :class:`helper_lib.analysis.film.Film` as a matplotlib
animation with the per-step KL curve beside it (:func:`animate_film`), as HTML for a notebook or a
static page (:func:`film_html`) and as a GIF (:func:`save_gif`, ``python -m helper_lib film``).
"""

from __future__ import annotations

import os
import re
from html import escape
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import animation, patheffects

from ..plotting import DIGIT_COLOURS
from .film import Film

__all__ = ["running_mean", "animate_film", "film_html", "save_gif"]


def running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Centred running mean over ``window`` values; near the ends, over the values there are
    (so the ends are not pulled towards zero)."""
    values = np.asarray(values, dtype=np.float64)
    if window <= 1:
        return values
    kernel = np.ones(window)
    total = np.convolve(values, kernel, mode="same")
    count = np.convolve(np.ones_like(values), kernel, mode="same")
    return total / count


def _grid_image(tiles: np.ndarray, pad: int = 2) -> np.ndarray:
    """``[G, 28, 28]`` uint8 tiles (G a square) as one image with ``pad`` white-grey gaps."""
    n = int(round(len(tiles) ** 0.5))
    if n * n != len(tiles):
        raise ValueError(f"{len(tiles)} decoded images do not form a square grid")
    from torchvision.utils import make_grid

    grid = make_grid(torch.from_numpy(tiles).unsqueeze(1), nrow=n, padding=pad, pad_value=128)
    return grid[0].numpy()


def _step_label(step: int, batches_per_epoch: int) -> str:
    if step == 0:
        return "step 0: the untrained model"
    epoch, rest = divmod(step, batches_per_epoch)
    if rest == 0:
        return f"step {step:,}: end of epoch {epoch}"
    return f"step {step:,} (epoch {epoch + 1}, batch {rest})"


def animate_film(film: Film, interval: int = 700, lims: float | None = None,
                 kl_smooth: int = 5, dpi: int = 72) -> animation.FuncAnimation:
    """An animation of ``film``: the means of the followed images (coloured by digit), the
    decoded grid of codes, and the per-step KL term with a marker at the snapshot's step.

    Display it in a notebook with ``IPython.display.HTML(film_html(anim))``, which plays in the
    static HTML export too, offline. The figure is detached from pyplot, so it does not also
    appear as a still image. ``lims`` fixes the scatter's axes to ``[-lims, lims]`` (default:
    wide enough for 99 % of the means in every frame, at least 3.5). ``kl_smooth`` is a running
    mean over that many steps, to make the curve readable; the marker sits on the smoothed
    curve. ``dpi`` sets the size of the frames that the player embeds (72: about 200 kB each).
    """
    if film.mu.shape[2] != 2:
        raise ValueError(f"animate_film draws a 2-D latent space, this film is "
                         f"{film.mu.shape[2]}-D")
    mu = film.mu.astype(np.float32)
    if lims is None:
        lims = max(3.5, max(float(np.quantile(np.abs(m), 0.995)) for m in mu) * 1.1)
    kl = running_mean(film.kl, kl_smooth)
    kl_steps = np.arange(1, len(kl) + 1)  # the value logged after step t is drawn at t

    fig = plt.figure(figsize=(12.6, 4.6), dpi=dpi)
    gs = fig.add_gridspec(1, 3, width_ratios=[1.0, 1.0, 1.15], wspace=0.28)
    ax_map, ax_dec, ax_kl = (fig.add_subplot(gs[0, i]) for i in range(3))
    colors = [DIGIT_COLOURS[int(label) % 10] for label in film.labels]
    scat = ax_map.scatter(mu[0, :, 0], mu[0, :, 1], s=3, c=colors, alpha=0.6, rasterized=True)
    digits = np.unique(film.labels)
    texts = [ax_map.text(0, 0, str(d), ha="center", va="center", fontsize=11,
                         fontweight="bold", color="black",  # the label, not the colour
                         path_effects=[patheffects.withStroke(linewidth=2.5,
                                                              foreground="white")])
             for d in digits]
    ax_map.set_xlim(-lims, lims)
    ax_map.set_ylim(-lims, lims)
    ax_map.set_aspect("equal")
    ax_map.axhline(0, color="0.7", lw=0.5)
    ax_map.axvline(0, color="0.7", lw=0.5)
    ax_map.add_patch(plt.Circle((0, 0), 2.0, fill=False, ls="--", lw=0.8, color="0.4"))
    ax_map.set_xlabel("$z_1$")
    ax_map.set_ylabel("$z_2$")
    ax_map.set_title(f"means $\\mu(x)$ of {mu.shape[1]:,} test images")

    image = ax_dec.imshow(_grid_image(film.decoded[0]), cmap="gray", vmin=0, vmax=255)
    ax_dec.set_axis_off()
    ax_dec.set_title("decoder on a fixed grid of $z$\n(N(0,1) quantiles 5 %..95 %)", fontsize=10)

    ax_kl.plot(kl_steps, kl, color="tab:red", lw=1)
    ax_kl.set_xscale("log")
    ax_kl.set_xlim(1, len(kl))
    ax_kl.set_xlabel("optimizer step (log scale)")
    ax_kl.set_ylabel("KL term, nats per image")
    ax_kl.set_title("the KL curve of the same run")
    for e in range(1, len(kl) // film.batches_per_epoch + 1):
        ax_kl.axvline(e * film.batches_per_epoch, color="0.85", lw=0.6, zorder=0)
    (marker,) = ax_kl.plot([], [], "o", color="black", ms=7)
    title = fig.suptitle("", fontsize=12)

    def draw(i: int) -> list:
        step = int(film.steps[i])
        scat.set_offsets(mu[i])
        for text, d in zip(texts, digits, strict=True):
            centre = np.median(mu[i][film.labels == d], axis=0)
            text.set_position((float(centre[0]), float(centre[1])))
        image.set_data(_grid_image(film.decoded[i]))
        x = max(step, 1)
        marker.set_data([x], [kl[x - 1]])
        title.set_text(_step_label(step, film.batches_per_epoch))
        return [scat, image, marker, title, *texts]

    draw(0)
    anim = animation.FuncAnimation(fig, draw, frames=len(film.steps), interval=interval,
                                   blit=False, repeat=True)
    plt.close(fig)
    spread = [float(np.sqrt(np.mean(np.sum(m ** 2, axis=1)))) for m in (mu[0], mu[-1])]
    last = _step_label(int(film.steps[-1]), film.batches_per_epoch)
    anim.alt_text = (  # what the player's picture (the last frame) shows, for film_html
        f"The last of {len(film.steps)} snapshots, {last}: "
        f"the means of {mu.shape[1]:,} test images, labelled by digit, spread from "
        f"{spread[0]:.2f} to {spread[1]:.2f} (root mean square distance from 0) since step "
        f"{int(film.steps[0]):,}; the KL term ends at {kl[-1]:.2f} nats per image")
    return anim


#: matplotlib's player buttons use Font Awesome icons from a CDN; these stand in for them.
_PLAYER_ICONS = {
    "fa fa-minus": "\u2212", "fa fa-fast-backward": "|\u25c0\u25c0",
    "fa fa-step-backward": "|\u25c0", "fa fa-play fa-flip-horizontal": "\u25c0",
    "fa fa-pause": "\u275a\u275a", "fa fa-play": "\u25b6", "fa fa-step-forward": "\u25b6|",
    "fa fa-fast-forward": "\u25b6\u25b6|", "fa fa-plus": "+",
}


def film_html(anim: animation.FuncAnimation, default_mode: str = "once",
              alt: str | None = None) -> str:
    """``anim`` as a self-contained HTML/JS player (``anim.to_jshtml``), with nothing fetched
    from the network: matplotlib's player links Font Awesome from a CDN for its button icons,
    which is dropped here and the icons replaced by plain characters. The player's picture holds
    the last frame before any script runs, so a copy without JavaScript still shows the result.
    Show it in a notebook with
    ``IPython.display.HTML(film_html(anim))``; it plays in JupyterLab and in static HTML pages.
    ``alt`` is the picture's alt text (default: what :func:`animate_film` wrote of the last
    frame, ``anim.alt_text``)."""
    alt = alt or getattr(anim, "alt_text", "the last frame of the animation")
    html = anim.to_jshtml(default_mode=default_mode)
    html = re.sub(r"<link[^>]*font-awesome[^>]*>", "", html)
    for css_class, text in _PLAYER_ICONS.items():
        html = html.replace(f'<i class="{css_class}"></i>', text)
    # A name for each control that a screen reader reads out: the buttons' icons are symbols,
    # the slider has no label at all.
    html = re.sub(r'<button (title="([^"]+)")', r'<button \1 aria-label="\2"', html)
    html = re.sub(r'(<input[^>]*id="_anim_slider\w+")', r'\1 aria-label="frame"', html)
    # Without JavaScript (a static copy of the page, a notebook viewer) the player's <img> stays
    # empty: give it the last frame, which the player replaces as soon as it runs.
    frames = re.findall(r'frames\[\d+\] = "(data:image/[^"]+)"', html)
    if frames:
        html = re.sub(r'<img id="(_anim_img\w+)">',
                      lambda m: f'<img id="{m.group(1)}" src="{frames[-1]}" alt="{escape(alt)}">',
                      html, count=1)
    if "fa fa-" in html or "://" in re.sub(r"data:[^\"']*", "", html):
        raise RuntimeError("matplotlib's animation player changed: it still refers to Font "
                           "Awesome or to an address; update helper_lib.analysis.film.film_html")
    return html


def save_gif(anim: animation.FuncAnimation, path: str | os.PathLike, fps: float = 1.5,
             dpi: int = 60) -> Path:
    """Write ``anim`` as a looping GIF with Pillow (a matplotlib dependency)."""
    path = Path(path)
    anim.save(path, writer=animation.PillowWriter(fps=fps), dpi=dpi)
    return path
