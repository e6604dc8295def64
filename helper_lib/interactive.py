"""A live latent-space explorer for lectures: move the sliders, watch the decoder.

``latent_explorer(model, codes, labels)`` returns an ipywidgets widget: one slider per latent
dimension sets ``z``, the decoded image updates at once, and for a 2-D model the latent map
(the codes of real images, coloured by label) shows where ``z`` is. Where no widget front end
runs (nbconvert, CI, a static page), the same cell shows a PNG of the current state instead:
the widget's display bundle carries both.
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import patheffects
from matplotlib.colors import ListedColormap
from torch import Tensor, nn

from .evaluate import inference
from .plotting import DIGIT_COLOURS, class_medians, finish_figure

_DIGITS = ListedColormap(DIGIT_COLOURS, name="digits")  # the classes' colours, as in every plot

try:
    import ipywidgets as widgets
except ImportError:  # the [widgets] extra is not installed: latent_explorer draws a picture
    widgets = None

__all__ = ["EXPLORER_MIME", "LatentExplorer", "latent_explorer", "WIDGETS_HINT"]

#: The explorer's settings in its display bundle, for the course site, which makes a live panel
#: of it (issue #35: helper_lib.tools.book, explorer.js): the shipped models' names, the map's
#: codes and labels. Front ends that do not know the type ignore it.
EXPLORER_MIME = "application/vnd.helper-lib.latent-explorer+json"
#: The map's codes that the site's panel draws, at most (the first ones).
SITE_CODES = 2000

#: The one line shown where ipywidgets is missing.
WIDGETS_HINT = ("the live explorer needs ipywidgets (pip install 'helper_lib[widgets]'); "
                "showing a static picture of z = 0 instead")


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return buffer.getvalue()


class LatentExplorer(widgets.VBox if widgets is not None else object):
    """The explorer widget; build it with :func:`latent_explorer`.

    Attributes:
        sliders: one ``FloatSlider`` per latent dimension; setting ``.value`` moves ``z``.
        digit: the ``ipywidgets.Image`` showing the decoded image (PNG).
        map: the ``ipywidgets.Image`` with the latent map (2-D models only, else ``None``).
    """

    def __init__(self, model: nn.Module, codes: Tensor | None, labels: Tensor | None,
                 limit: float, compare: nn.Module | None = None) -> None:
        self.model, self.compare = model, compare
        self._codes, self._labels, self._limit = codes, labels, limit
        d = int(model.latent_dim)
        self.sliders = [widgets.FloatSlider(value=0.0, min=-limit, max=limit, step=0.05,
                                            description=f"z{j + 1}", continuous_update=True,
                                            readout_format=".2f") for j in range(d)]
        self.digit = widgets.Image(format="png", width=200, height=200)
        self._digit_fig, self._digit_ax = plt.subplots(figsize=(2.2, 2.2))
        plt.close(self._digit_fig)
        self._digit_im = self._digit_ax.imshow(np.zeros((28, 28)), cmap="binary", vmin=0, vmax=1)
        self._digit_ax.set_axis_off()
        self.other = None  # the same z decoded by ``compare``
        if compare is not None:
            self.other = widgets.Image(format="png", width=200, height=200)
            self._other_fig, self._other_ax = plt.subplots(figsize=(2.2, 2.2))
            plt.close(self._other_fig)
            self._other_im = self._other_ax.imshow(np.zeros((28, 28)), cmap="binary", vmin=0,
                                                   vmax=1)
            self._other_ax.set_axis_off()
            self._other_ax.set_title(_title(compare), fontsize=11)
        self.map = None
        if d == 2 and codes is not None:
            self._map_fig, ax = plt.subplots(figsize=(3.6, 3.6))
            plt.close(self._map_fig)
            c = torch.as_tensor(codes).cpu().numpy()
            colours = None if labels is None else torch.as_tensor(labels).cpu().numpy()
            ax.scatter(c[:, 0], c[:, 1], s=2, c=colours, cmap=_DIGITS, vmin=-0.5, vmax=9.5,
                       alpha=0.5, rasterized=True)
            ax.set(xlim=(-limit, limit), ylim=(-limit, limit), xlabel="$z_1$", ylabel="$z_2$")
            ax.set_aspect("equal")
            (self._marker,) = ax.plot([0], [0], "k*", ms=14, mec="white")
            self.map = widgets.Image(format="png", width=300, height=300)
        for slider in self.sliders:
            slider.observe(self._update, names="value")
        top = [w for w in (self.map, self.digit, self.other) if w is not None]
        super().__init__([widgets.HBox(top), widgets.VBox(self.sliders)])
        self._update()

    def z(self) -> Tensor:
        """The current code, ``[1, D]``."""
        return torch.tensor([[s.value for s in self.sliders]], dtype=torch.float32)

    def decoded(self, model: nn.Module | None = None) -> Tensor:
        """The decoder's image for the current code, ``[28, 28]`` in [0, 1] (``model``'s, or
        else the explored model's)."""
        model = model or self.model
        with inference(model, None) as device:
            return model.decode(self.z().to(device)).float().cpu()[0, 0]

    def _update(self, change: Any = None) -> None:
        self._digit_im.set_data(self.decoded().numpy())
        if self.other is not None:
            self._other_im.set_data(self.decoded(self.compare).numpy())
            self.other.value = _png(self._other_fig)
        self._digit_ax.set_title("z = (" + ", ".join(f"{v:.2f}" for v in self.z()[0].tolist())
                                 + ")" if len(self.sliders) <= 4 else "decoded", fontsize=11)
        self.digit.value = _png(self._digit_fig)
        if self.map is not None:
            z = self.z()[0]
            self._marker.set_data([float(z[0])], [float(z[1])])
            self.map.value = _png(self._map_fig)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget for front ends that run widgets, and a picture of the current state for
        everything else (nbconvert, static pages): :func:`_picture` at this ``z``, with its alt
        text and its smallest text in the PNG's metadata, as every figure of the course."""
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        fig = _picture(self.model, self.z()[0].tolist(), self._codes, self._labels, self._limit,
                       self.compare)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        data = {**data, "image/png": buffer.getvalue(), "text/plain": fig.alt_text}
        settings = site_settings(self.model, self._codes, self._labels, self._limit,
                                 self.z()[0].tolist(), self.compare)
        if settings is not None:
            data[EXPLORER_MIME] = settings
        metadata = {**(bundle[1] if isinstance(bundle, tuple) else {}), "image/png": {
            "alt": fig.alt_text, "smallest_text_pt": fig.smallest_text_pt}}
        return data, metadata


def latent_explorer(model: nn.Module, codes: Tensor | None = None,
                    labels: Tensor | None = None, limit: float = 3.0,
                    compare: nn.Module | None = None) -> LatentExplorer:
    """An interactive explorer of ``model``'s decoder: one slider per latent dimension.

    Args:
        model: a ``ConvVAE`` or ``ConvAutoencoder`` (anything with ``latent_dim`` and
            ``decode``).
        codes, labels: for a 2-D model, the codes ``[N, 2]`` and labels ``[N]`` of real images
            (e.g. from ``collect_latents``), drawn as the map on which a star marks ``z``.
        limit: the sliders (and the map) span ``[-limit, limit]``.
        compare: another model with a code of the same size (notebook 02: the autoencoder
            beside the VAE), whose decoder shows the same ``z`` beside the first.

    Display it as a cell's last expression. In JupyterLab it updates live; elsewhere the cell
    shows a static PNG of its current state. Without ipywidgets (the ``[widgets]`` extra) it
    prints :data:`WIDGETS_HINT` and returns a Figure of the decoded ``z = 0`` instead.
    """
    if compare is not None and int(compare.latent_dim) != int(model.latent_dim):
        raise ValueError(f"compare has a {compare.latent_dim}-D code and model a "
                         f"{model.latent_dim}-D one: the same z must fit both")
    if widgets is None:
        print(WIDGETS_HINT)
        return _picture(model, [0.0] * int(model.latent_dim), codes, labels, limit, compare)
    return LatentExplorer(model, codes, labels, limit, compare)


def _title(model: nn.Module) -> str:
    return {"ConvVAE": "VAE", "ConvAutoencoder": "autoencoder"}.get(type(model).__name__,
                                                                   type(model).__name__)


def site_settings(model: nn.Module, codes: Tensor | None, labels: Tensor | None, limit: float,
                  z: list[float], compare: nn.Module | None = None) -> dict[str, Any] | None:
    """What the course site's live panel needs (:data:`EXPLORER_MIME`), or ``None`` where it
    cannot run the same models: a model that is not 2-D, no map, or a model that is not a
    shipped one as :func:`helper_lib.checkpoints.load_pretrained` returned it (smoke mode's
    quick sketches: the site exports only the shipped models)."""
    models = [m for m in (model, compare) if m is not None]
    names = [getattr(m, "pretrained_name", None) for m in models]
    if int(model.latent_dim) != 2 or codes is None or labels is None or None in names:
        return None
    c = torch.as_tensor(codes).cpu()[:SITE_CODES].float()
    y = torch.as_tensor(labels).cpu()[:SITE_CODES].long()
    medians = [[d, round(x, 3), round(v, 3)] for d, x, v in class_medians(c, y)]
    return {"models": names, "titles": [_title(m) for m in models],
            "classifier": "classifier_mnist", "limit": float(limit),
            "z": [float(v) for v in z], "codes": [[round(a, 3), round(b, 3)]
                                                  for a, b in c.tolist()],
            "labels": y.tolist(), "medians": medians, "colours": list(DIGIT_COLOURS)}


def _picture(model: nn.Module, z: list[float], codes: Tensor | None, labels: Tensor | None,
             limit: float, compare: nn.Module | None = None) -> Any:
    """The explorer's state as a finished Figure (alt text, smallest text recorded): the map
    (2-D models with codes) with a star at ``z``, the image decoded from ``z``, and the image
    ``compare`` decodes from it."""
    two_d = int(model.latent_dim) == 2 and codes is not None
    panels = 1 + two_d + (compare is not None)
    fig, axes = plt.subplots(1, panels, figsize=(3.6 + 3.0 * (panels - 1), 3.2),
                             squeeze=False, layout="constrained",
                             gridspec_kw={"width_ratios": [1.3] * two_d + [1] * (panels - two_d)})
    if two_d:
        c = torch.as_tensor(codes).cpu().numpy()
        colours = None if labels is None else torch.as_tensor(labels).cpu().numpy()
        axes[0, 0].scatter(c[:, 0], c[:, 1], s=2, c=colours, cmap=_DIGITS, vmin=-0.5,
                           vmax=9.5, alpha=0.5, rasterized=True)
        for digit, cx, cy in class_medians(codes, labels) if labels is not None else []:
            if abs(cx) <= limit and abs(cy) <= limit:  # each class named, not by colour alone
                axes[0, 0].text(cx, cy, str(digit), ha="center", va="center", fontsize=11,
                                fontweight="bold", color="black", path_effects=[
                                    patheffects.withStroke(linewidth=2.5, foreground="white")])
        axes[0, 0].plot([z[0]], [z[1]], "k*", ms=14, mec="white")
        axes[0, 0].set(xlim=(-limit, limit), ylim=(-limit, limit), xlabel="$z_1$",
                       ylabel="$z_2$", aspect="equal")
    for k, m in enumerate(m for m in (model, compare) if m is not None):
        with inference(m, None) as device:
            image = m.decode(torch.tensor([z], dtype=torch.float32, device=device))
        ax = axes[0, int(two_d) + k]
        ax.imshow(image.float().cpu()[0, 0].numpy(), cmap="binary", vmin=0, vmax=1)
        ax.set_title(_title(m) if compare is not None else
                     (f"decoded {_code(z)}" if len(z) <= 4 else "decoded"), fontsize=11)
        ax.set_axis_off()
    fig.suptitle("latent explorer (a static picture: run the notebook to move the sliders)",
                 fontsize=11)
    return finish_figure(fig, alt=_describe(z, len(codes) if two_d else None,
                                            [_title(compare)] if compare is not None else []))


def _code(z: list[float]) -> str:
    """``z = (1.25, -0.50)``: the code as the picture's title and its alt text write it."""
    return "z = (" + ", ".join(f"{v:.2f}" for v in z) + ")"


def _describe(z: list[float], codes: int | None, others: list[str] | None = None) -> str:
    """The explorer's alt text: the image decoded from ``z`` (and by the ``others``), and the
    map of ``codes`` codes (2-D models) on which a star marks ``z``."""
    at = _code(z) if len(z) <= 4 else f"the code its {len(z)} sliders set"
    where = (f"; beside it, a map of {codes:,} codes of real images, coloured and labelled by "
             f"digit, with a star at z" if codes is not None and len(z) == 2 else "")
    also = "".join(f", and the image the {name} makes of it" for name in others or [])
    return (f"Latent explorer, a static picture (run the notebook to move the sliders): the "
            f"image the decoder makes of {at}{also}{where}")
