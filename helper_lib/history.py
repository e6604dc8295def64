"""The record of a training run: per-batch and per-epoch losses, timings, JSON and CSV.

Its own module, so that both :mod:`helper_lib.train` (which fills it) and
:mod:`helper_lib.checkpoints` (which loads the shipped ones) can use it without importing each
other.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["History"]


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
