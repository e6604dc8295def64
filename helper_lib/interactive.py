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
from matplotlib.colors import ListedColormap
from torch import Tensor, nn

from .evaluate import inference
from .plotting import DIGIT_COLOURS, finish_figure

_DIGITS = ListedColormap(DIGIT_COLOURS, name="digits")  # the classes' colours, as in every plot

try:
    import ipywidgets as widgets
except ImportError:  # the [widgets] extra is not installed: latent_explorer draws a picture
    widgets = None

__all__ = ["LatentExplorer", "latent_explorer", "WIDGETS_HINT"]

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
                 limit: float) -> None:
        self.model = model
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
        top = [self.map, self.digit] if self.map is not None else [self.digit]
        super().__init__([widgets.HBox(top), widgets.VBox(self.sliders)])
        self._update()

    def z(self) -> Tensor:
        """The current code, ``[1, D]``."""
        return torch.tensor([[s.value for s in self.sliders]], dtype=torch.float32)

    def decoded(self) -> Tensor:
        """The decoder's image for the current code, ``[28, 28]`` in [0, 1]."""
        with inference(self.model, None) as device:
            return self.model.decode(self.z().to(device)).float().cpu()[0, 0]

    def _update(self, change: Any = None) -> None:
        self._digit_im.set_data(self.decoded().numpy())
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
        fig = _picture(self.model, self.z()[0].tolist(), self._codes, self._labels, self._limit)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        data = {**data, "image/png": buffer.getvalue(), "text/plain": fig.alt_text}
        metadata = {**(bundle[1] if isinstance(bundle, tuple) else {}), "image/png": {
            "alt": fig.alt_text, "smallest_text_pt": fig.smallest_text_pt}}
        return data, metadata


def latent_explorer(model: nn.Module, codes: Tensor | None = None,
                    labels: Tensor | None = None, limit: float = 3.0) -> LatentExplorer:
    """An interactive explorer of ``model``'s decoder: one slider per latent dimension.

    Args:
        model: a ``ConvVAE`` or ``ConvAutoencoder`` (anything with ``latent_dim`` and
            ``decode``).
        codes, labels: for a 2-D model, the codes ``[N, 2]`` and labels ``[N]`` of real images
            (e.g. from ``collect_latents``), drawn as the map on which a star marks ``z``.
        limit: the sliders (and the map) span ``[-limit, limit]``.

    Display it as a cell's last expression. In JupyterLab it updates live; elsewhere the cell
    shows a static PNG of its current state. Without ipywidgets (the ``[widgets]`` extra) it
    prints :data:`WIDGETS_HINT` and returns a Figure of the decoded ``z = 0`` instead.
    """
    if widgets is None:
        print(WIDGETS_HINT)
        return _picture(model, [0.0] * int(model.latent_dim), codes, labels, limit)
    return LatentExplorer(model, codes, labels, limit)


def _picture(model: nn.Module, z: list[float], codes: Tensor | None, labels: Tensor | None,
             limit: float) -> Any:
    """The explorer's state as a finished Figure (alt text, smallest text recorded): the map
    (2-D models with codes) with a star at ``z``, and the image decoded from ``z``."""
    two_d = int(model.latent_dim) == 2 and codes is not None
    fig, axes = plt.subplots(1, 2 if two_d else 1, figsize=(6.6 if two_d else 3.6, 3.2),
                             squeeze=False, layout="constrained")
    if two_d:
        c = torch.as_tensor(codes).cpu().numpy()
        colours = None if labels is None else torch.as_tensor(labels).cpu().numpy()
        axes[0, 0].scatter(c[:, 0], c[:, 1], s=2, c=colours, cmap=_DIGITS, vmin=-0.5,
                           vmax=9.5, alpha=0.5, rasterized=True)
        axes[0, 0].plot([z[0]], [z[1]], "k*", ms=14, mec="white")
        axes[0, 0].set(xlim=(-limit, limit), ylim=(-limit, limit), xlabel="$z_1$",
                       ylabel="$z_2$", aspect="equal")
    with inference(model, None) as device:
        image = model.decode(torch.tensor([z], dtype=torch.float32, device=device))
    axes[0, -1].imshow(image.float().cpu()[0, 0].numpy(), cmap="binary", vmin=0, vmax=1)
    axes[0, -1].set_title(f"decoded {_code(z)}" if len(z) <= 4 else "decoded", fontsize=11)
    axes[0, -1].set_axis_off()
    fig.suptitle("latent explorer (a static picture: run the notebook to move the sliders)",
                 fontsize=11)
    return finish_figure(fig, alt=_describe(z, len(codes) if two_d else None))


def _code(z: list[float]) -> str:
    """``z = (1.25, -0.50)``: the code as the picture's title and its alt text write it."""
    return "z = (" + ", ".join(f"{v:.2f}" for v in z) + ")"


def _describe(z: list[float], codes: int | None) -> str:
    """The explorer's alt text: the image decoded from ``z``, and the map of ``codes`` codes
    (2-D models) on which a star marks ``z``."""
    at = _code(z) if len(z) <= 4 else f"the code its {len(z)} sliders set"
    where = (f"; beside it, a map of {codes:,} codes of real images, coloured by digit, with a "
             f"star at z" if codes is not None and len(z) == 2 else "")
    return (f"Latent explorer, a static picture (run the notebook to move the sliders): the "
            f"image the decoder makes of {at}{where}")
