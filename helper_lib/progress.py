"""The training loop's progress: a tqdm bar with the running loss, and one line per epoch."""

from __future__ import annotations

import sys

from torch import Tensor
from tqdm.auto import tqdm

from .history import History

__all__ = ["Progress"]


class Progress:
    """The tqdm bar (the running loss every ``log_every`` steps) and one line per epoch."""

    def __init__(self, enabled: bool, total: int, names: tuple[str, ...], log_every: int) -> None:
        # In a log file (no terminal) redraw the bar every few seconds rather than 10x a second.
        interactive = "ipykernel" in sys.modules or (hasattr(sys.stderr, "isatty")
                                                      and sys.stderr.isatty())
        self.enabled, self.names, self.log_every = enabled, names, log_every
        self.bar = tqdm(total=total, disable=not enabled, unit="batch", dynamic_ncols=True,
                        mininterval=0.1 if interactive else 5.0)

    def epoch(self, epoch: int, epochs: int) -> None:
        self.bar.set_description(f"epoch {epoch + 1}/{epochs}")

    def step(self, step: int, terms: Tensor, last: bool) -> None:
        if (step + 1) % self.log_every == 0 or last:  # .tolist() waits for the device
            latest = terms.float().cpu().tolist()
            # refresh=False: redraw on tqdm's own schedule (every few seconds in a log file)
            self.bar.set_postfix({n: f"{v:.4g}" for n, v in zip(self.names, latest, strict=True)},
                                 refresh=False)
        self.bar.update(1)

    def epoch_done(self, history: History, epoch: int, epochs: int) -> None:
        if not self.enabled:
            return
        summary = ", ".join(f"{n} {history.train[n][-1]:.4f}" for n in self.names)
        if history.valid:
            summary += " | valid " + ", ".join(f"{n} {v[-1]:.4f}" for n, v in history.valid.items())
        self.bar.write(f"epoch {epoch + 1:3d}/{epochs}: {summary} "
                       f"({history.epoch_seconds[-1]:.1f} s)")

    def close(self) -> None:
        self.bar.close()

