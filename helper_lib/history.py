"""The record of a training run: :class:`History` (per-batch and per-epoch losses, timings; JSON
and CSV) and :class:`Snapshots` (the latent space at chosen steps).

Their own module, so that both :mod:`helper_lib.train` (which fills them) and
:mod:`helper_lib.checkpoints` (which loads the shipped ones) can use them without importing each
other.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["History", "Snapshots"]


@dataclass
class History:
    """What happened during training.

    Attributes:
        names: loss components, e.g. ``("total", "reconstruction", "kl")``; the first is the one
            that was minimized.
        batch: per-batch training values, ``batch[name][i]`` for the i-th step overall.
        train: per-epoch training means (the mean of that epoch's batch losses, as the lecture
            logs them).
        valid: per-epoch validation means (per image), empty without a validation loader.
        epoch_seconds: wall-clock time of each epoch.
        batches_per_epoch: steps in each epoch.
        lr: the learning rate of every step (empty in histories written before it was kept).
    """

    names: tuple[str, ...]
    batch: dict[str, list[float]] = field(default_factory=dict)
    train: dict[str, list[float]] = field(default_factory=dict)
    valid: dict[str, list[float]] = field(default_factory=dict)
    epoch_seconds: list[float] = field(default_factory=list)
    batches_per_epoch: list[int] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.names = tuple(self.names)
        for table in (self.batch, self.train):
            for name in self.names:
                table.setdefault(name, [])

    @property
    def epochs(self) -> int:
        """Number of completed epochs."""
        return len(self.epoch_seconds)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (JSON-serializable)."""
        return {**asdict(self), "names": list(self.names)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**data, "names": tuple(data["names"])})

    def to_json(self, path: str | os.PathLike) -> None:
        """Write the whole history (per batch and per epoch) as JSON."""
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> History:
        """Read a history written by :meth:`to_json`."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write one row per epoch: epoch, seconds, train_<name>..., valid_<name>..."""
        columns = ["epoch", "seconds"] + [f"train_{n}" for n in self.names]
        columns += [f"valid_{n}" for n in self.names if self.valid.get(n)]
        with open(path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for e in range(self.epochs):
                row: list[Any] = [e + 1, round(self.epoch_seconds[e], 3)]
                row += [self.train[n][e] for n in self.names]
                row += [self.valid[n][e] for n in self.names if self.valid.get(n)]
                writer.writerow(row)


@dataclass
class Snapshots:
    """What ``train_vae(..., snapshots=...)`` records while training: the latent space forming.

    At every global step in ``steps`` (the number of optimizer steps done; 0 is before the
    first) the posterior means and log-variances of the fixed ``images`` and the decoding of the
    fixed ``codes`` are stored in ``records``, one dict per step: ``{"step": int,
    "mu": [N, D] float16, "logvar": [N, D] float16, "decoded": [G, 28, 28] uint8}``. They are
    saved in the training checkpoint, so a resumed run keeps the ones it already has.

    Attributes:
        steps: the global steps to record at.
        images: ``[N, 1, 28, 28]`` images whose means are recorded (e.g. 2,000 test images).
        codes: ``[G, D]`` latent points decoded at each snapshot (e.g. a grid), or ``None``.
    """

    steps: Sequence[int]
    images: Tensor
    codes: Tensor | None = None
    records: list[dict[str, Any]] = field(default_factory=list)

    def due(self, step: int) -> bool:
        """True when ``step`` is to be recorded and has not been yet."""
        return step in set(self.steps) and all(r["step"] != step for r in self.records)

    def record(self, model: nn.Module, step: int) -> None:
        """Store the means of :attr:`images` and the decodings of :attr:`codes` now."""
        was_training = model.training
        device = next(model.parameters()).device
        model.eval()
        try:
            with torch.no_grad():
                mu, logvar = (t.float().cpu() for t in model.encode(self.images.to(device)))
                decoded = (model.decode(self.codes.to(device)).float().cpu()[:, 0]
                           if self.codes is not None else torch.zeros(0, 28, 28))
        finally:
            model.train(was_training)
        self.records.append({"step": step, "mu": mu.half(), "logvar": logvar.half(),
                             "decoded": (decoded.clamp(0, 1) * 255).round().to(torch.uint8)})

