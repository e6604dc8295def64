"""Attributes measured from the pixels, and attribute vectors in a latent space.

Two honest, simple measures for digit images ``[N, 1, 28, 28]`` in [0, 1]:

* :func:`ink` is the total ink, the sum of the pixel values. For strokes of similar length it
  grows with their thickness, so it is a *proxy* for thickness, not a measurement of it.
* :func:`slant` is the shear of the ink from image moments: ``mu11 / mu02`` (the covariance of
  column and row over the variance of the row), positive when the top of the digit leans right.

:func:`attribute_vector` is the course's recipe for latent arithmetic (L17's "smiling" vector):
the mean code of the images with the most of an attribute minus that of the images with the least.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ink", "slant", "attribute_vector"]


def ink(images: Tensor) -> Tensor:
    """Total ink per image, ``[N]``: the sum of the grey values (a thickness proxy)."""
    return images.detach().float().flatten(1).sum(1)


def slant(images: Tensor) -> Tensor:
    """Slant per image, ``[N]``: ``mu11 / mu02`` of the ink, in columns per row.

    With ``r`` the row (growing downwards) and ``c`` the column, weighted by the ink:
    ``mu11 = E[(c - c̄)(r - r̄)]`` and ``mu02 = E[(r - r̄)^2]``. A stroke leaning right at the
    top (like ``/``) has its column falling as the row grows, so the value is reported with
    the sign flipped: positive means leaning right. An upright ``|`` gives 0.
    """
    w = images.detach().float().flatten(1)  # [N, H*W]
    h, width = images.shape[-2:]
    rows = torch.arange(h, dtype=torch.float32).repeat_interleave(width)  # [H*W]
    cols = torch.arange(width, dtype=torch.float32).repeat(h)
    total = w.sum(1).clamp_min(1e-8)
    r_mean = (w * rows).sum(1) / total
    c_mean = (w * cols).sum(1) / total
    dr = rows - r_mean[:, None]
    dc = cols - c_mean[:, None]
    mu11 = (w * dr * dc).sum(1) / total
    mu02 = (w * dr * dr).sum(1) / total
    return -mu11 / mu02.clamp_min(1e-8)


def attribute_vector(codes: Tensor, values: Tensor, share: float = 0.1) -> Tensor:
    """Mean code of the top ``share`` of images by ``values`` minus that of the bottom ``share``.

    Args:
        codes: ``[N, D]`` codes (e.g. the posterior means).
        values: ``[N]`` the attribute per image (e.g. :func:`slant`).
        share: the fraction at each end, in (0, 0.5].

    Returns:
        ``[D]``: adding multiples of it to a code should raise the attribute of its decoding.
    """
    if not 0 < share <= 0.5:
        raise ValueError(f"share must be in (0, 0.5], got {share}")
    if len(codes) != len(values):
        raise ValueError(f"{len(codes)} codes but {len(values)} values")
    k = max(1, int(round(share * len(values))))
    order = torch.argsort(values)
    return codes[order[-k:]].float().mean(0) - codes[order[:k]].float().mean(0)
