"""Training: :func:`train_step`, one step of gradient descent on one batch, and the loop that
runs it.

Read from the top: :func:`train_step`; :func:`vae_loss_fn`, the loss it is handed for a VAE;
the three functions a notebook calls,
:func:`train_vae`, :func:`train_autoencoder` and :func:`train_classifier`, which each hand their
loss to the one loop, ``_fit`` (epoch after epoch, ``train_step`` on every batch), and
:func:`train_model`, which picks the function by the model's type. After the loop come its
settings (:data:`RECIPES`, :data:`SCHEDULES`, :func:`check_training_args`) and its small helpers.
Beside it, in their own modules: :class:`helper_lib.resume.RunState` (what a checkpoint holds to
resume a run, saved after each epoch) and :class:`helper_lib.progress.Progress` (the bar and a
line per epoch).

Where the loop waits for the device: besides the progress bar's reading every 25 steps, only at
the NaN check in ``train_step`` (a single number; on a CPU, where every operation has finished
when it returns, there is nothing to wait for). Per-batch values stay on the device until the
end of the epoch. What makes it fast on a CPU (bf16 where it is native, channels_last, fused
layers, the allocator) lives in :mod:`helper_lib.fast`; the measurements are in
``benchmarks/README.md``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from .checkpoints import remove_partial_writes
from .data import shuffle_generator
from .evaluate import evaluate_autoencoder, evaluate_classifier, evaluate_vae
from .fast.allocator import tune_cpu_allocator
from .fast.precision import Precision, resolve_precision
from .history import History, Snapshots
from .losses import vae_loss
from .model_types import check_outputs, model_type
from .progress import Progress
from .resume import RunState
from .utils import SettingsError, check_whole_number, get_device, set_seed

__all__ = ["train_step", "vae_loss_fn", "train_vae", "train_autoencoder", "train_classifier",
           "train_model", "SCHEDULES", "RECIPES", "check_training_args", "make_optimizer"]

#: ``loss_fn(model_output, x, y)`` -> loss components (the first is minimized); ``y`` are the
#: labels (``None`` for a loader without them).
LossFn = Callable[[Any, Tensor, Tensor | None], tuple[Tensor, ...]]


def train_step(model: nn.Module, x: Tensor, y: Tensor | None, loss_fn: LossFn,
               optimizer: torch.optim.Optimizer, precision: Precision) -> Tensor:
    """One step of gradient descent on the batch ``x [B, 1, 28, 28]`` (labels ``y [B]`` or
    None); returns the loss terms ``[K]``, detached. Every train_* function runs it on each
    batch. A loss that is not finite raises FloatingPointError before backward, so the
    weights stay those of the step before."""
    with precision.autocast(x.device):  # bf16 where the hardware computes it natively
        out = model(x)  # the forward pass: (z, mu, logvar, x_hat) for a VAE
    terms = loss_fn(out, x, y)  # (total, reconstruction, kl), in fp32
    if not bool(torch.isfinite(terms[0])):
        raise FloatingPointError(f"the loss became {terms[0].item()}")
    optimizer.zero_grad(set_to_none=True)  # forget the previous batch's gradients
    terms[0].backward()  # d(total loss) / d(weight), for every weight
    optimizer.step()  # Adam moves each weight a little against its gradient
    return torch.stack([t.detach() for t in terms])


def vae_loss_fn(model: nn.Module, kind: str = "mse", reconstruction_weight: float = 1.0,
                beta: float = 1.0) -> LossFn:
    """The ``loss_fn`` that :func:`train_vae` hands to :func:`train_step`: the negative ELBO of
    :func:`helper_lib.losses.vae_loss`, ``(total, reconstruction, kl)``, from the VAE's
    ``(z, mu, logvar, x_hat)``."""
    def loss_fn(out: tuple[Tensor, ...], x: Tensor, y: Tensor | None) -> tuple[Tensor, ...]:
        _, mu, logvar, x_hat = check_outputs(out, model, "vae")
        return tuple(vae_loss(x_hat, x, mu, logvar, kind, reconstruction_weight, beta))
    return loss_fn


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
            :func:`helper_lib.fast.precision.resolve_precision`.
        checkpoint_path: if given, a training checkpoint is written after every epoch, and
            training resumes from it when the file already exists (weights, Adam's state,
            history and random states; ``lr`` is the one passed now, not the saved one).
        seed: if given, seeds everything first (initial weights are set at model creation, so
            seed before building the model as well for a fully reproducible run).
        progress: show a tqdm bar with the running loss, and one line per epoch.
        checkpoint_metadata: extra metadata stored in the checkpoint (e.g. the command). The
            keys ``epoch``, ``precision``, ``lr`` and ``schedule`` are always the library's own.
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
    loss_fn = vae_loss_fn(model, kind, reconstruction_weight, beta)

    def valid_fn(m: nn.Module, loader: DataLoader) -> dict[str, float]:
        return evaluate_vae(m, loader, kind=kind, reconstruction_weight=reconstruction_weight,
                            beta=beta, precision=precision)

    return _fit(model, train_loader, loss_fn=loss_fn, names=("total", "reconstruction", "kl"),
                valid_fn=valid_fn, epochs=epochs, lr=lr, schedule=schedule,
                valid_loader=valid_loader, device=device, precision=precision,
                checkpoint_path=checkpoint_path, seed=seed, progress=progress,
                checkpoint_metadata=checkpoint_metadata, snapshots=snapshots)


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

    return _fit(model, train_loader, loss_fn=loss_fn, names=("mse",), valid_fn=valid_fn,
                epochs=epochs, lr=lr, schedule=schedule, valid_loader=valid_loader,
                device=device, precision=precision, checkpoint_path=checkpoint_path, seed=seed,
                progress=progress, checkpoint_metadata=checkpoint_metadata)


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

    return _fit(model, train_loader, loss_fn=loss_fn, names=("cross_entropy", "error"),
                valid_fn=valid_fn, epochs=epochs, lr=lr, schedule=schedule,
                valid_loader=valid_loader, device=device, precision=precision,
                checkpoint_path=checkpoint_path, seed=seed, progress=progress,
                checkpoint_metadata=checkpoint_metadata)


def train_model(model: nn.Module, train_loader: DataLoader, epochs: int, **options: Any
                ) -> History:
    """Train any of the course's models with the function for its type
    (:func:`helper_lib.model_types.model_type`): :func:`train_vae`, :func:`train_autoencoder` or
    :func:`train_classifier`. ``options`` are that function's keyword arguments; the VAE's
    loss options (``kind``, ``beta``, ``reconstruction_weight``, ``snapshots``) are refused for
    the others rather than ignored.
    """
    trainer = {"vae": train_vae, "autoencoder": train_autoencoder,
               "classifier": train_classifier}[model_type(model).name]
    if trainer is not train_vae:
        vae_only = sorted(set(options) & {"kind", "beta", "reconstruction_weight", "snapshots"})
        if vae_only:
            raise SettingsError(f"{', '.join(vae_only)}: options of a VAE's loss, but "
                                f"{type(model).__name__} is not a VAE")
    return trainer(model, train_loader, epochs, **options)


def _fit(
    model: nn.Module,
    train_loader: DataLoader,
    *,
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
    """The loop of every ``train_*`` function: :func:`train_step` on every batch, epoch after
    epoch. ``loss_fn(model_output, x, y)`` returns the loss terms named by ``names``."""
    check_training_args(epochs, lr, schedule)
    if len(train_loader) == 0:
        raise SettingsError("the training loader yields no batches")
    dev, prec = _prepare(model, device, precision, seed)
    optimizer = make_optimizer(model, lr, dev)
    scheduler = _make_scheduler(optimizer, schedule, lr, max(epochs, 1) * len(train_loader))
    run = RunState(model, optimizer, scheduler, History(names), snapshots,
                    shuffle_generator(train_loader), dev)
    if checkpoint_path is not None:
        remove_partial_writes(checkpoint_path)  # left by a run killed while saving
        if Path(checkpoint_path).is_file():
            run.resume(checkpoint_path, lr, schedule, epochs, len(train_loader))
    history = run.history
    run.snapshot(sum(history.batches_per_epoch))  # step 0, or where the resumed run stopped
    bar = Progress(progress, max(epochs - history.epochs, 0) * len(train_loader), names,
                    log_every)
    try:
        for epoch in range(history.epochs, epochs):
            done = sum(history.batches_per_epoch)  # optimizer steps before this epoch
            model.train()
            bar.epoch(epoch, epochs)
            t0 = time.perf_counter()
            terms: list[Tensor] = []
            for step, (x, y) in enumerate(_batches(train_loader, dev, prec)):
                lr_now = optimizer.param_groups[0]["lr"]
                try:
                    terms.append(train_step(model, x, y, loss_fn, optimizer, prec))
                except FloatingPointError as err:
                    raise FloatingPointError(
                        f"{err} in epoch {epoch + 1}, batch {step + 1}. Training stopped "
                        "before that step, so the model keeps the weights of the step before. "
                        f"Try a lower learning rate (lr={lr} now), e.g. lr={lr / 10:g}."
                    ) from None
                history.lr.append(lr_now)
                if scheduler is not None:
                    scheduler.step()
                run.snapshot(done + step + 1)
                bar.step(step, terms[-1], last=step + 1 == len(train_loader))
            valid = (valid_fn(model, valid_loader)
                     if valid_fn is not None and valid_loader is not None else None)
            _record_epoch(history, terms, time.perf_counter() - t0, valid)
            bar.epoch_done(history, epoch, epochs)
            if checkpoint_path is not None:
                run.save(checkpoint_path, **{**(checkpoint_metadata or {}), "epoch": epoch + 1,
                                             "precision": prec.name, "lr": lr,
                                             "schedule": schedule})
    finally:
        bar.close()
        if prec.channels_last:  # also after an error, e.g. a NaN loss
            model.to(memory_format=torch.contiguous_format)
    return history


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


def _prepare(model: nn.Module, device: str | torch.device, precision: str,
             seed: int | None) -> tuple[torch.device, Precision]:
    """Seed, and move ``model`` to the device and the memory layout it will train in."""
    dev = get_device(device)
    prec = resolve_precision(precision, dev)
    if dev.type == "cpu":
        tune_cpu_allocator()
    if seed is not None:
        set_seed(seed)
    model.to(dev)
    if prec.channels_last:
        model.to(memory_format=torch.channels_last)
    return dev, prec


def make_optimizer(model: nn.Module, lr: float, device: torch.device) -> torch.optim.Adam:
    """The loop's optimizer: Adam, with the fused kernel that updates all parameters in one pass
    on CPU and CUDA."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(model.parameters(), lr=lr, fused=fused)


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


def _batches(loader: DataLoader, device: torch.device,
             precision: Precision) -> Iterator[tuple[Tensor, Tensor | None]]:
    """``(x, y)`` of every batch on ``device`` (``y`` is ``None`` for a loader without labels),
    ``x`` in the memory layout the model runs in."""
    for x, *rest in loader:
        x = x.to(device, non_blocking=True)
        y = rest[0].to(device, non_blocking=True) if rest else None
        if precision.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, y


def _record_epoch(history: History, terms: list[Tensor], seconds: float,
                  valid: dict[str, float] | None) -> None:
    """Append one epoch's per-batch ``terms`` ``[K]``, their means and ``valid`` to ``history``."""
    per_batch = torch.stack(terms).float().cpu()  # [batches, K]
    for i, name in enumerate(history.names):
        history.batch[name].extend(per_batch[:, i].tolist())
        history.train[name].append(per_batch[:, i].mean().item())
    history.batches_per_epoch.append(len(terms))
    for name, value in (valid or {}).items():
        history.valid.setdefault(name, []).append(value)
    history.epoch_seconds.append(seconds)
