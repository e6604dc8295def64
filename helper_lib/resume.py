"""Resuming a training run: what a checkpoint holds besides the weights, saved and read back.

The loop in :mod:`helper_lib.train` saves a :class:`RunState` after every epoch and, when its
checkpoint file already exists, resumes from it: Adam's state, the learning-rate schedule's, the
history, the latent-space snapshots and every random state (CPU, CUDA or MPS, and the loader's
shuffling), so that a resumed run gives the same weights as one that never stopped.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from .checkpoints import load_checkpoint, save_checkpoint
from .history import History, Snapshots
from .utils import SettingsError

__all__ = ["RunState"]


class RunState:
    """What a training checkpoint holds beside the weights, and how to save and restore it:
    Adam's state, the schedule's, the history, the snapshots and every random state."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None, history: History,
                 snapshots: Snapshots | None, generator: torch.Generator | None,
                 device: torch.device) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.history, self.snapshots = history, snapshots
        self.generator, self.device = generator, device

    def resume(self, path: str | os.PathLike, lr: float, schedule: str, epochs: int,
               steps_per_epoch: int) -> None:
        """Continue the run saved in ``path``; refuse one with another schedule."""
        state = load_checkpoint(path)
        meta = state.get("metadata", {})
        self.model.load_state_dict(state["state_dict"])
        if "optimizer_state" in state:
            self.optimizer.load_state_dict(state["optimizer_state"])
        if "history" in state:
            self.history = History.from_dict(state["history"])
        saved_schedule = meta.get("schedule", "constant")
        if saved_schedule != schedule:
            raise SettingsError(f"{path} was trained with schedule={saved_schedule!r}, "
                                f"not {schedule!r}; resume with the same schedule, or start over")
        if self.scheduler is not None:
            self._resume_schedule(path, state.get("scheduler_state"), meta.get("lr"), lr, epochs,
                                  steps_per_epoch)
        else:
            # The saved rate would win otherwise; a resumed run trains with the lr it is given.
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        if self.snapshots is not None and "snapshots" in state:
            self.snapshots.records = list(state["snapshots"])
        rng = state.get("rng_state", {})
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], self.device)
        if "mps" in rng and self.device.type == "mps":
            torch.mps.set_rng_state(rng["mps"])
        if "loader" in rng and self.generator is not None:
            self.generator.set_state(rng["loader"])

    def _resume_schedule(self, path: str | os.PathLike, saved: Any, saved_lr: Any, lr: float,
                         epochs: int, steps_per_epoch: int) -> None:
        # A one-cycle run's length and peak are fixed when it starts: its state carries them.
        if not isinstance(saved, dict) or "total_steps" not in saved:
            raise SettingsError(
                f"{path} records schedule='onecycle' but holds no state of the schedule (a "
                "file from an older helper_lib, or written by hand), so the run cannot "
                "continue where it stopped. Start over instead (--fresh on the command line, "
                "or delete the file).")
        if saved["total_steps"] != self.scheduler.total_steps or saved_lr != lr:
            saved_epochs = saved["total_steps"] // steps_per_epoch
            peak = f"{saved_lr:g}" if isinstance(saved_lr, int | float) else "unrecorded"
            raise SettingsError(
                f"{path} holds a one-cycle run of {saved_epochs} epochs with peak lr={peak}; a "
                "one-cycle schedule cannot be resumed with other epochs or lr (asked: "
                f"{epochs} epochs, lr={lr:g}). Start over instead.")
        self.scheduler.load_state_dict(saved)

    def save(self, path: str | os.PathLike, **metadata: Any) -> None:
        """Write the weights and everything :meth:`resume` reads back."""
        # eps in reparameterize is drawn on the model's device, so its generator too
        rng_state = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng_state["cuda"] = torch.cuda.get_rng_state(self.device)
        elif self.device.type == "mps":
            rng_state["mps"] = torch.mps.get_rng_state()
        if self.generator is not None:
            rng_state["loader"] = self.generator.get_state()
        extra: dict[str, Any] = {"history": self.history.to_dict(), "rng_state": rng_state}
        if self.snapshots is not None:
            extra["snapshots"] = self.snapshots.records
        if self.scheduler is not None:
            extra["scheduler_state"] = self.scheduler.state_dict()
        save_checkpoint(path, self.model, optimizer=self.optimizer, extra=extra, **metadata)

    def snapshot(self, step: int) -> None:
        """Record the latent space if ``step`` (optimizer steps done) is one to record."""
        if self.snapshots is not None and self.snapshots.due(step):
            self.snapshots.record(self.model, step)

