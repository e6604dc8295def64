"""Training loops for the autoencoder and the VAE, with progress bars, history and resuming.

Speed (see ``benchmarks/README.md``): batches come from the in-memory loader, the model runs in
channels_last and, where bf16 is native and faster (CPUs with AMX or AVX512-BF16, GPUs from
Ampere on), under bf16 autocast; losses are always computed in fp32, and per-batch values stay
on the device until the end of the epoch instead of forcing an ``.item()`` sync on every step.
On CPU the models' layers themselves are faster drop-ins (:mod:`helper_lib.layers`): each
convolution is fused with its LeakyReLU, and the transposed convolutions add their bias outside
oneDNN.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .checkpoints import load_checkpoint, remove_partial_writes, save_checkpoint
from .evaluate import evaluate_autoencoder, evaluate_classifier, evaluate_vae
from .history import History
from .losses import vae_loss
from .models import check_outputs
from .utils import (
    Precision,
    SettingsError,
    check_whole_number,
    get_device,
    resolve_precision,
    set_seed,
    tune_cpu_allocator,
)

__all__ = ["History", "Snapshots", "train_step", "train_vae", "train_autoencoder",
           "train_classifier", "SCHEDULES", "RECIPES", "check_training_args"]

#: ``loss_fn(model_output, x, y)`` -> loss components (the first is minimized); ``y`` are the
#: labels (``None`` for a loader without them).
LossFn = Callable[[Any, Tensor, Tensor | None], tuple[Tensor, ...]]


def train_step(model: nn.Module, x: Tensor, y: Tensor | None, loss_fn: LossFn,
               optimizer: torch.optim.Optimizer, precision: Precision) -> Tensor:
    """One step of gradient descent on one batch; returns the loss components, detached.

    ``x [B, 1, 28, 28]`` (and labels ``y [B]`` or ``None``) on the model's device. This is the
    whole of training; every ``train_*`` function runs it once per batch::

        with precision.autocast(x.device):   # bf16 where the hardware computes it natively
            out = model(x)                    # the forward pass, e.g. (z, mu, logvar, x_hat)
        terms = loss_fn(out, x, y)            # (total, reconstruction, kl), in fp32
        optimizer.zero_grad(set_to_none=True)
        terms[0].backward()                   # gradients of the total loss
        optimizer.step()                      # Adam updates the weights

    Raises:
        FloatingPointError: the loss is not finite. Raised before ``backward``, so the model
            keeps the weights of the step before.
    """
    with precision.autocast(x.device):
        out = model(x)
    terms = loss_fn(out, x, y)  # fp32, outside autocast
    if not bool(torch.isfinite(terms[0])):
        raise FloatingPointError(f"the loss became {terms[0].item()}")
    optimizer.zero_grad(set_to_none=True)
    terms[0].backward()
    optimizer.step()
    return torch.stack([t.detach() for t in terms])


def _loader_generator(loader: DataLoader) -> torch.Generator | None:
    """The generator that shuffles ``loader`` (plain or in-memory batched loader)."""
    if getattr(loader, "generator", None) is not None:
        return loader.generator
    sampler = getattr(loader, "sampler", None)
    inner = getattr(sampler, "sampler", sampler)
    return getattr(inner, "generator", None)


def _make_optimizer(model: nn.Module, lr: float, device: torch.device) -> torch.optim.Adam:
    # The fused kernel updates all parameters in one pass (CPU and CUDA).
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(model.parameters(), lr=lr, fused=fused)


#: Learning-rate schedules that :func:`train_vae` and :func:`train_autoencoder` accept.
SCHEDULES = ("constant", "onecycle")

#: Training recipes for the command line's ``--recipe``: schedule, (peak) learning rate and
#: epochs. Explicit ``--schedule``/``--lr``/``--epochs`` flags override them. ``"lecture"`` is
#: L17.5's constant Adam rate for 50 epochs; ``"fast"`` reaches the same test loss in far fewer
#: epochs with a one-cycle schedule (measured in ``data/pretrained/README.md``).
RECIPES: dict[str, dict[str, Any]] = {
    "lecture": {"schedule": "constant", "lr": 5e-4, "epochs": 50},
    "fast": {"schedule": "onecycle", "lr": 6e-3, "epochs": 12},
}


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


def _make_scheduler(
    optimizer: torch.optim.Optimizer, schedule: str, lr: float, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """``None`` for a constant rate; for ``"onecycle"`` a one-cycle schedule stepped per batch.

    One-cycle (Smith & Topin, 2019; ``torch.optim.lr_scheduler.OneCycleLR``): the rate warms up
    from ``lr / 25`` to the peak ``lr`` over the first 30 % of all steps, then anneals along a
    cosine to ``lr / 2.5e5`` at the last step. Adam's first moment is cycled inversely (beta1
    0.95 → 0.85 → 0.95), OneCycleLR's default.
    """
    if schedule == "constant":
        return None
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps)


def check_training_args(epochs: int, lr: float, schedule: str = "constant") -> None:
    """Raise :class:`~helper_lib.utils.SettingsError` (a ``ValueError``) with one clear sentence
    for a bad epoch count, learning rate or schedule.

    Shared by the Python API and the command line, so both say the same thing.
    """
    check_whole_number("epochs", epochs, 0, "the lecture trains for 50")
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not (
        math.isfinite(lr) and lr > 0
    ):
        raise SettingsError(f"lr must be a number > 0, got {lr!r} (the lecture uses 5e-4)")
    if schedule not in SCHEDULES:
        raise SettingsError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")


def _fit(
    model: nn.Module,
    train_loader: DataLoader,
    epochs: int,
    lr: float,
    loss_fn: LossFn,
    names: tuple[str, ...],
    valid_fn: Callable[[nn.Module, DataLoader], dict[str, float]] | None,
    valid_loader: DataLoader | None,
    device: str | torch.device,
    precision: str,
    checkpoint_path: str | os.PathLike | None,
    seed: int | None,
    progress: bool,
    checkpoint_metadata: dict[str, Any] | None,
    schedule: str = "constant",
    log_every: int = 25,
    snapshots: Snapshots | None = None,
) -> History:
    """The shared loop. ``loss_fn(model_output, x, y)`` returns the components named by
    ``names``."""
    check_training_args(epochs, lr, schedule)
    if len(train_loader) == 0:
        raise SettingsError("the training loader yields no batches")
    dev = get_device(device)
    prec = resolve_precision(precision, dev)
    if dev.type == "cpu":
        tune_cpu_allocator()
    if seed is not None:
        set_seed(seed)
    model.to(dev)
    if prec.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = _make_optimizer(model, lr, dev)
    scheduler = _make_scheduler(optimizer, schedule, lr, max(epochs, 1) * len(train_loader))
    history = History(names)
    generator = _loader_generator(train_loader)

    if checkpoint_path is not None:
        remove_partial_writes(checkpoint_path)  # left by a run killed while saving
    if checkpoint_path is not None and Path(checkpoint_path).is_file():
        state = load_checkpoint(checkpoint_path)
        model.load_state_dict(state["state_dict"])
        if "optimizer_state" in state:
            optimizer.load_state_dict(state["optimizer_state"])
        if "history" in state:
            history = History.from_dict(state["history"])
        saved_schedule = state.get("metadata", {}).get("schedule", "constant")
        if saved_schedule != schedule:
            raise SettingsError(f"{checkpoint_path} was trained with schedule={saved_schedule!r}, "
                             f"not {schedule!r}; resume with the same schedule, or start over")
        if scheduler is not None:
            # A one-cycle run's length and peak are fixed when it starts: its state carries them.
            saved = state.get("scheduler_state")
            saved_lr = state.get("metadata", {}).get("lr")
            if not isinstance(saved, dict) or "total_steps" not in saved:
                raise SettingsError(
                    f"{checkpoint_path} records schedule='onecycle' but holds no state of the "
                    "schedule (a file from an older helper_lib, or written by hand), so the run "
                    "cannot continue where it stopped. Start over instead (--fresh on the "
                    "command line, or delete the file).")
            if saved["total_steps"] != scheduler.total_steps or saved_lr != lr:
                saved_epochs = saved["total_steps"] // len(train_loader)
                peak = f"{saved_lr:g}" if isinstance(saved_lr, int | float) else "unrecorded"
                raise SettingsError(
                    f"{checkpoint_path} holds a one-cycle run of {saved_epochs} epochs with peak "
                    f"lr={peak}; a one-cycle schedule cannot be resumed with other "
                    f"epochs or lr (asked: {epochs} epochs, lr={lr:g}). Start over instead."
                )
            scheduler.load_state_dict(saved)
        else:
            # The saved rate would win otherwise; a resumed run trains with the lr it is given.
            for group in optimizer.param_groups:
                group["lr"] = lr
        if snapshots is not None and "snapshots" in state:
            snapshots.records = list(state["snapshots"])
        rng = state.get("rng_state", {})
        if "torch" in rng:
            torch.set_rng_state(rng["torch"])
        if "cuda" in rng and dev.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], dev)
        if "mps" in rng and dev.type == "mps":
            torch.mps.set_rng_state(rng["mps"])
        if "loader" in rng and generator is not None:
            generator.set_state(rng["loader"])
    start = history.epochs
    done_steps = sum(history.batches_per_epoch)
    if snapshots is not None and snapshots.due(done_steps):
        snapshots.record(model, done_steps)
    total_steps = max(epochs - start, 0) * len(train_loader)

    # In a log file (no terminal) redraw the bar every few seconds rather than 10x a second.
    interactive = "ipykernel" in sys.modules or (hasattr(sys.stderr, "isatty")
                                                  and sys.stderr.isatty())
    bar = tqdm(total=total_steps, disable=not progress, unit="batch", dynamic_ncols=True,
               mininterval=0.1 if interactive else 5.0)
    try:
        for epoch in range(start, epochs):
            done_steps = sum(history.batches_per_epoch)  # optimizer steps before this epoch
            model.train()
            bar.set_description(f"epoch {epoch + 1}/{epochs}")
            t0 = time.perf_counter()
            values: list[Tensor] = []
            for step, (x, *rest) in enumerate(train_loader):
                x = x.to(dev, non_blocking=True)
                y = rest[0].to(dev, non_blocking=True) if rest else None
                if prec.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                lr_now = optimizer.param_groups[0]["lr"]
                try:
                    values.append(train_step(model, x, y, loss_fn, optimizer, prec))
                except FloatingPointError as err:
                    raise FloatingPointError(
                        f"{err} in epoch {epoch + 1}, batch {step + 1}. Training stopped "
                        "before that step, so the model keeps the weights of the step before. "
                        f"Try a lower learning rate (lr={lr} now), e.g. lr={lr / 10:g}."
                    ) from None
                history.lr.append(lr_now)
                if scheduler is not None:
                    scheduler.step()
                if snapshots is not None and snapshots.due(done_steps + step + 1):
                    snapshots.record(model, done_steps + step + 1)
                last = step + 1 == len(train_loader)
                if (step + 1) % log_every == 0 or last:
                    latest = values[-1].float().cpu().tolist()
                    # refresh=False: redraw on tqdm's own schedule (every few seconds in a log file)
                    bar.set_postfix({n: f"{v:.4g}" for n, v in zip(names, latest, strict=True)},
                                    refresh=False)
                bar.update(1)

            per_batch = torch.stack(values).float().cpu()
            for i, name in enumerate(names):
                history.batch[name].extend(per_batch[:, i].tolist())
                history.train[name].append(per_batch[:, i].mean().item())
            history.batches_per_epoch.append(len(values))
            if valid_fn is not None and valid_loader is not None:
                for name, value in valid_fn(model, valid_loader).items():
                    history.valid.setdefault(name, []).append(value)
            history.epoch_seconds.append(time.perf_counter() - t0)
            if progress:
                summary = ", ".join(f"{n} {history.train[n][-1]:.4f}" for n in names)
                if history.valid:
                    summary += " | valid " + ", ".join(
                        f"{n} {v[-1]:.4f}" for n, v in history.valid.items()
                    )
                bar.write(f"epoch {epoch + 1:3d}/{epochs}: {summary} "
                          f"({history.epoch_seconds[-1]:.1f} s)")
            if checkpoint_path is not None:
                # eps in reparameterize is drawn on the model's device, so its generator too
                rng_state = {"torch": torch.get_rng_state()}
                if dev.type == "cuda":
                    rng_state["cuda"] = torch.cuda.get_rng_state(dev)
                elif dev.type == "mps":
                    rng_state["mps"] = torch.mps.get_rng_state()
                if generator is not None:
                    rng_state["loader"] = generator.get_state()
                extra: dict[str, Any] = {"history": history.to_dict(), "rng_state": rng_state}
                if snapshots is not None:
                    extra["snapshots"] = snapshots.records
                if scheduler is not None:
                    extra["scheduler_state"] = scheduler.state_dict()
                save_checkpoint(
                    checkpoint_path, model, optimizer=optimizer, extra=extra,
                    **{**(checkpoint_metadata or {}), "epoch": epoch + 1,
                       "precision": prec.name, "lr": lr, "schedule": schedule},
                )
    finally:
        bar.close()
        if prec.channels_last:  # also after an error, e.g. a NaN loss
            model.to(memory_format=torch.contiguous_format)
    return history


def train_vae(
    model: nn.Module,
    train_loader: DataLoader,
    epochs: int,
    lr: float = 5e-4,
    schedule: str = "constant",
    reconstruction_weight: float = 1.0,
    beta: float = 1.0,
    kind: str = "mse",
    valid_loader: DataLoader | None = None,
    device: str | torch.device = "auto",
    precision: str = "auto",
    checkpoint_path: str | os.PathLike | None = None,
    seed: int | None = None,
    progress: bool = True,
    checkpoint_metadata: dict[str, Any] | None = None,
    snapshots: Snapshots | None = None,
) -> History:
    """Train a :class:`~helper_lib.models.ConvVAE` with Adam on the negative ELBO.

    Loss per batch: ``reconstruction_weight * reconstruction + beta * KL``, where both terms are
    summed per image (over pixels / latent dims) and averaged over the batch
    (:func:`helper_lib.losses.vae_loss`).

    Args:
        model: the VAE; moved to ``device`` and trained in place.
        train_loader: yields ``(images [B, 1, 28, 28], labels [B])``.
        epochs: train until this many epochs are done (counting epochs restored from
            ``checkpoint_path``), a whole number >= 0.
        lr: Adam's learning rate; with ``schedule="onecycle"`` its peak.
        schedule: ``"constant"`` (the lecture's) or ``"onecycle"``: warm up to ``lr`` over the
            first 30 % of the steps, then anneal to almost 0 (``OneCycleLR``, stepped once per
            batch). Its state is saved in the checkpoint, so a resumed run continues the same
            curve; it cannot be resumed with other ``epochs`` or ``lr``.
        reconstruction_weight: the lecture's alpha.
        beta: weight of the KL term.
        kind: ``"mse"`` or ``"bce"`` reconstruction loss.
        valid_loader: if given, the validation loss is computed after every epoch.
        device: ``"auto"`` (CUDA, then MPS, then CPU) or a device.
        precision: ``"auto"``, ``"bf16"`` or ``"fp32"``; see
            :func:`helper_lib.utils.resolve_precision`.
        checkpoint_path: if given, a training checkpoint is written after every epoch, and
            training resumes from it when the file already exists (weights, Adam's state,
            history and random states; ``lr`` is the one passed now, not the saved one).
        seed: if given, seeds everything first (initial weights are set at model creation, so
            seed before building the model as well for a fully reproducible run).
        progress: show a tqdm bar with the running loss, and one line per epoch.
        checkpoint_metadata: extra metadata stored in the checkpoint (e.g. the command). The
            keys ``epoch``, ``precision`` and ``lr`` are always the library's own.
        snapshots: a :class:`Snapshots` to fill with the latent space at chosen steps (saved
            in the checkpoint and restored on resume).

    Returns:
        A :class:`History` with components ``("total", "reconstruction", "kl")``.

    Raises:
        FloatingPointError: the loss became NaN or infinite (the message names the epoch and
            batch).
        ValueError: a negative or fractional ``epochs``, a ``lr`` that is not > 0, an unknown
            ``schedule`` (before any work starts), or a checkpoint that cannot be resumed with
            these settings.
        TypeError: ``model`` is not a VAE (its forward does not return
            ``(z, mu, logvar, x_hat)``); the message points to :func:`train_autoencoder`.
    """
    def loss_fn(out: tuple[Tensor, ...], x: Tensor, y: Tensor | None) -> tuple[Tensor, ...]:
        _, mu, logvar, x_hat = check_outputs(out, model, "vae")
        return tuple(vae_loss(x_hat, x, mu, logvar, kind, reconstruction_weight, beta))

    def valid_fn(m: nn.Module, loader: DataLoader) -> dict[str, float]:
        return evaluate_vae(m, loader, kind=kind, reconstruction_weight=reconstruction_weight,
                            beta=beta, precision=precision)

    return _fit(model, train_loader, epochs, lr, loss_fn, ("total", "reconstruction", "kl"),
                valid_fn, valid_loader, device, precision, checkpoint_path, seed, progress,
                checkpoint_metadata, schedule, snapshots=snapshots)


def train_autoencoder(
    model: nn.Module,
    train_loader: DataLoader,
    epochs: int,
    lr: float = 5e-4,
    schedule: str = "constant",
    valid_loader: DataLoader | None = None,
    device: str | torch.device = "auto",
    precision: str = "auto",
    checkpoint_path: str | os.PathLike | None = None,
    seed: int | None = None,
    progress: bool = True,
    checkpoint_metadata: dict[str, Any] | None = None,
) -> History:
    """Train a :class:`~helper_lib.models.ConvAutoencoder` with Adam on the per-pixel MSE.

    The loss is ``mean((x_hat - x)^2)`` over all pixels and images of a batch, as in L16.
    Arguments are as for :func:`train_vae`. Returns a :class:`History` with one component,
    ``"mse"``.
    """
    def loss_fn(out: tuple[Tensor, Tensor], x: Tensor, y: Tensor | None) -> tuple[Tensor, ...]:
        _, x_hat = check_outputs(out, model, "autoencoder")
        return (F.mse_loss(x_hat.float(), x),)

    def valid_fn(m: nn.Module, loader: DataLoader) -> dict[str, float]:
        return evaluate_autoencoder(m, loader, precision=precision)

    return _fit(model, train_loader, epochs, lr, loss_fn, ("mse",), valid_fn, valid_loader,
                device, precision, checkpoint_path, seed, progress, checkpoint_metadata, schedule)



def train_classifier(
    model: nn.Module,
    train_loader: DataLoader,
    epochs: int,
    lr: float = 1e-3,
    schedule: str = "constant",
    valid_loader: DataLoader | None = None,
    device: str | torch.device = "auto",
    precision: str = "auto",
    checkpoint_path: str | os.PathLike | None = None,
    seed: int | None = None,
    progress: bool = True,
    checkpoint_metadata: dict[str, Any] | None = None,
) -> History:
    """Train a :class:`~helper_lib.models.MnistClassifier` with Adam on the cross-entropy.

    The loader must yield ``(images [B, 1, 28, 28], labels [B])``. The loss is the mean
    cross-entropy over the batch (nats). Other arguments are as for :func:`train_vae`.
    Returns a :class:`History` with components ``("cross_entropy", "error")``, the second the
    share of the batch misclassified.
    """

    def loss_fn(out: Tensor, x: Tensor, y: Tensor | None) -> tuple[Tensor, ...]:
        (logits,) = check_outputs(out, model, "classifier")
        if y is None:
            raise TypeError("train_classifier needs a loader that yields (images, labels)")
        logits = logits.float()
        return F.cross_entropy(logits, y), (logits.argmax(1) != y).float().mean()

    def valid_fn(m: nn.Module, loader: DataLoader) -> dict[str, float]:
        return evaluate_classifier(m, loader, precision=precision)

    return _fit(model, train_loader, epochs, lr, loss_fn, ("cross_entropy", "error"), valid_fn,
                valid_loader, device, precision, checkpoint_path, seed, progress,
                checkpoint_metadata, schedule)
