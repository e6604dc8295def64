"""Attributes measured from the pixels, and attribute vectors in a latent space.

Two honest, simple measures for digit images ``[N, 1, 28, 28]`` in [0, 1]:

* :func:`ink` is the total ink, the sum of the pixel values. For strokes of similar length it
  grows with their thickness, so it is a *proxy* for thickness, not a measurement of it.
* :func:`slant` is the shear of the ink from image moments: ``mu11 / mu02`` (the covariance of
  column and row over the variance of the row), positive when the top of the digit leans right.
* :func:`brightness` is the mean grey value (for clothes: how light the garment is), and
  :func:`width` the ink-weighted spread of the columns (how wide the object is).

:func:`attribute_vector` is the course's recipe for latent arithmetic (L17's "smiling" vector):
the mean code of the images with the most of an attribute minus that of the images with the least.
:func:`latent_arithmetic` adds multiples of such a vector to codes, decodes them, and measures
the attribute of the results and whether a classifier still sees the same class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..evaluate import inference

__all__ = ["ink", "slant", "brightness", "width", "attribute_vector", "ArithmeticResult",
           "latent_arithmetic"]


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


def brightness(images: Tensor) -> Tensor:
    """Mean grey value per image, ``[N]``, in [0, 1]."""
    return images.detach().float().flatten(1).mean(1)


def width(images: Tensor) -> Tensor:
    """Horizontal spread per image, ``[N]``: the ink-weighted standard deviation of the column
    index, in pixels (a T-shirt's sleeves make it large, a trouser leg small)."""
    w = images.detach().float().flatten(1)
    h, wd = images.shape[-2:]
    cols = torch.arange(wd, dtype=torch.float32).repeat(h)
    total = w.sum(1).clamp_min(1e-8)
    mean = (w * cols).sum(1) / total
    return ((w * (cols - mean[:, None]) ** 2).sum(1) / total).sqrt()


def attribute_vector(codes: Tensor, values: Tensor, share: float = 0.1,
                     groups: Tensor | None = None) -> Tensor:
    """Mean code of the top ``share`` of images by ``values`` minus that of the bottom ``share``.

    Args:
        codes: ``[N, D]`` codes (e.g. the posterior means).
        values: ``[N]`` the attribute per image (e.g. :func:`slant`).
        share: the fraction at each end, in (0, 0.5].
        groups: ``[N]`` optional labels (e.g. the digit classes). Then the top and bottom are
            taken within each group and the groups' vectors averaged, so that a class which
            simply has more of the attribute (a 0 has more ink than a 1) does not leak into
            the vector.

    Returns:
        ``[D]``: adding multiples of it to a code should raise the attribute of its decoding.
    """
    if not 0 < share <= 0.5:
        raise ValueError(f"share must be in (0, 0.5], got {share}")
    if len(codes) != len(values):
        raise ValueError(f"{len(codes)} codes but {len(values)} values")
    if groups is not None:
        if len(groups) != len(values):
            raise ValueError(f"{len(groups)} groups but {len(values)} values")
        return torch.stack([attribute_vector(codes[groups == g], values[groups == g], share)
                            for g in groups.unique()]).mean(0)
    k = max(1, int(round(share * len(values))))
    order = torch.argsort(values)
    return codes[order[-k:]].float().mean(0) - codes[order[:k]].float().mean(0)


class ArithmeticResult(NamedTuple):
    """What :func:`latent_arithmetic` measured, one entry per multiple.

    Attributes:
        multiples: ``[M]`` the multiples ``m`` of the vector added to every code.
        attribute: ``[M]`` the mean attribute of the decoded images.
        attribute_se: ``[M]`` its standard error over the images.
        agreement: ``[M]`` share of decoded images the classifier puts in the image's own class
            (``nan`` without a classifier).
        images: ``[M, S, 1, 28, 28]`` the decodings of the first ``S`` codes, to show.
    """

    multiples: Tensor
    attribute: Tensor
    attribute_se: Tensor
    agreement: Tensor
    images: Tensor


def latent_arithmetic(model: nn.Module, codes: Tensor, vector: Tensor, multiples: Sequence[float],
                      measure: Callable[[Tensor], Tensor], labels: Tensor | None = None,
                      classifier: nn.Module | None = None, keep: int = 8,
                      batch: int = 1000) -> ArithmeticResult:
    """Decode ``codes + m * vector`` for each multiple ``m`` and measure the results.

    Args:
        codes: ``[N, D]`` codes of real images (e.g. their posterior means).
        vector: ``[D]`` e.g. from :func:`attribute_vector`.
        measure: the attribute, ``images [N, 1, 28, 28] -> [N]`` (e.g. :func:`slant`).
        labels, classifier: with both, the share of decodings classified as ``labels``.
        keep: how many decodings per multiple to return for display.
    """
    n = len(codes)
    rows, means, ses, agree = [], [], [], []
    with inference(model, None) as device:
        for m in multiples:
            z = codes.float() + float(m) * vector.float()
            images = torch.cat([model.decode(part.to(device)).float().cpu()
                                for part in z.split(batch)])
            values = measure(images)
            means.append(values.mean())
            ses.append(values.std() / n ** 0.5 if n > 1 else torch.tensor(float("nan")))
            if classifier is not None and labels is not None:
                with inference(classifier, None) as cdev:
                    pred = torch.cat([classifier(part.to(cdev)).argmax(1).cpu()
                                      for part in images.split(batch)])
                agree.append((pred == labels.cpu()).float().mean())
            else:
                agree.append(torch.tensor(float("nan")))
            rows.append(images[:keep])
    return ArithmeticResult(torch.tensor([float(m) for m in multiples]), torch.stack(means),
                            torch.stack(ses), torch.stack(agree), torch.stack(rows))
