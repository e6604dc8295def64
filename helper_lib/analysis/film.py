"""The latent space forming during training: what to record, and the file it is kept in.

:class:`helper_lib.history.Snapshots` records the posterior means of fixed test images and the
decoding of a fixed grid of codes while ``train_vae`` runs. This module chooses those steps and
images (:func:`lecture_snapshots`), gathers them with the KL curve into a :class:`Film`
(:func:`film_from_snapshots`), and writes and reads it as one compressed ``.npz`` file
(:func:`save_film`, :func:`load_film`, no pickles). :mod:`helper_lib.analysis.film_plots` plays a
film as an animation.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..evaluate import quantile_grid
from ..history import History, Snapshots

__all__ = ["EARLY_STEPS", "Film", "snapshot_steps", "lecture_snapshots",
           "film_from_snapshots", "save_film", "load_film", "kl_parts"]


#: The optimizer steps recorded in the first epoch, where the KL term spikes (near step 20 with
#: the fast recipe), dips and climbs again; after that one snapshot at the end of every epoch.
EARLY_STEPS = (0, 5, 10, 15, 20, 25, 35, 50, 75, 100, 150, 200)


def snapshot_steps(batches_per_epoch: int, epochs: int,
                   early: Sequence[int] = EARLY_STEPS) -> list[int]:
    """The early steps that fall inside the run, then the end of every epoch, sorted."""
    total = batches_per_epoch * epochs
    steps = {s for s in early if 0 <= s <= total}
    steps.update(batches_per_epoch * (e + 1) for e in range(epochs))
    return sorted(steps)


def lecture_snapshots(test_images: Tensor, latent_dim: int, batches_per_epoch: int, epochs: int,
                      n_images: int = 2000, grid: int = 15, seed: int = 0) -> tuple[Snapshots,
                                                                                    Tensor]:
    """A :class:`Snapshots` for a training run, and the indices of the images it follows.

    Args:
        test_images: ``[N, 1, 28, 28]`` test images; ``n_images`` of them are drawn at random
            (seeded), so every digit class appears in its usual share.
        latent_dim: the model's ``D``. For ``D = 2`` the decoded codes are the ``grid x grid``
            :func:`quantile_grid` of notebook 02's manifold; otherwise ``grid * grid`` fixed
            draws from N(0, I).
    """
    g = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(test_images), generator=g)[:n_images].sort().values
    if latent_dim == 2:
        codes = quantile_grid(grid)
    else:
        codes = torch.randn(grid * grid, latent_dim, generator=g)
    steps = snapshot_steps(batches_per_epoch, epochs)
    return Snapshots(steps=steps, images=test_images[index], codes=codes), index


@dataclass
class Film:
    """Snapshots as arrays, ready to draw (see :func:`load_film`).

    Attributes:
        steps: ``[S]`` optimizer steps of the snapshots (0 = the untrained model).
        mu: ``[S, N, D]`` posterior means of the followed test images at each snapshot.
        logvar: ``[S, N, D]`` their posterior log-variances.
        decoded: ``[S, G, 28, 28]`` uint8 decodings of ``codes`` at each snapshot.
        codes: ``[G, D]`` the fixed codes that were decoded.
        labels: ``[N]`` digit labels of the followed images.
        image_index: ``[N]`` their positions in the test split.
        kl, loss: ``[T]`` per-step training KL term and combined loss (nats per image).
        batches_per_epoch: steps in an epoch of this run.
    """

    steps: np.ndarray
    mu: np.ndarray
    logvar: np.ndarray
    decoded: np.ndarray
    codes: np.ndarray
    labels: np.ndarray
    image_index: np.ndarray
    kl: np.ndarray
    loss: np.ndarray
    batches_per_epoch: int


def film_from_snapshots(snapshots: Snapshots, labels: Tensor, image_index: Tensor,
                        history: History, gray_levels: int = 64) -> Film:
    """The records of ``snapshots`` (and the per-step curves of ``history``) as a :class:`Film`.
    The means are kept as float16, the images as uint8 rounded down to ``gray_levels`` evenly
    spaced grey values (64 halves the compressed file; the eye cannot tell)."""
    if not 2 <= gray_levels <= 256:
        raise ValueError(f"gray_levels must be in 2..256, got {gray_levels}")
    records = sorted(snapshots.records, key=lambda r: r["step"])
    if not records:
        raise ValueError("no snapshots were recorded")
    step = 256 // gray_levels
    codes = snapshots.codes if snapshots.codes is not None else torch.zeros(0, 2)
    return Film(
        steps=np.array([r["step"] for r in records], dtype=np.int64),
        mu=np.stack([r["mu"].numpy() for r in records]).astype(np.float16),
        logvar=np.stack([r["logvar"].numpy() for r in records]).astype(np.float16),
        decoded=(np.stack([r["decoded"].numpy() for r in records]) // step * step
                 ).astype(np.uint8),
        codes=codes.numpy().astype(np.float32),
        labels=np.asarray(labels, dtype=np.uint8),
        image_index=np.asarray(image_index, dtype=np.int32),
        kl=np.asarray(history.batch["kl"], dtype=np.float32),
        loss=np.asarray(history.batch["total"], dtype=np.float32),
        batches_per_epoch=int(history.batches_per_epoch[0]),
    )


_ARRAYS = ("steps", "mu", "logvar", "decoded", "codes", "labels", "image_index", "kl", "loss")


def save_film(path: str | os.PathLike, film: Film) -> Path:
    """Write ``film`` to one compressed ``.npz`` file (data only, no pickles)."""
    path = Path(path)
    np.savez_compressed(path, **{k: getattr(film, k) for k in _ARRAYS},
                        batches_per_epoch=np.int64(film.batches_per_epoch))
    return path


def load_film(path: str | os.PathLike) -> Film:
    """Read a file written by :func:`save_film` (``allow_pickle=False``: data only)."""
    with np.load(path, allow_pickle=False) as f:
        return Film(**{k: f[k] for k in _ARRAYS}, batches_per_epoch=int(f["batches_per_epoch"]))


def kl_parts(film: Film) -> tuple[np.ndarray, np.ndarray]:
    """The KL term of the followed images at each snapshot, split into its two parts,
    ``[S]`` each, in nats per image (means over the images):

    ``KL = 1/2 sum_j mu_j^2  +  1/2 sum_j (sigma_j^2 - 1 - log sigma_j^2)``,

    the price of the means' distance from 0 and the price of the variances' distance from 1.
    """
    mu = film.mu.astype(np.float64)
    logvar = film.logvar.astype(np.float64)
    mean_part = 0.5 * (mu**2).sum(-1).mean(-1)
    var_part = 0.5 * (np.exp(logvar) - 1.0 - logvar).sum(-1).mean(-1)
    return mean_part, var_part
