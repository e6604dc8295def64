"""How long training takes here: one epoch of the lecture's VAE, timed on a few batches.

Used by ``python -m helper_lib doctor``, so that nobody starts an 11-minute training without
knowing it. The timed step is the one the training functions run,
:func:`helper_lib.train.train_step`, with their optimizer
(:func:`~helper_lib.train.make_optimizer`), their loss (:func:`~helper_lib.train.vae_loss_fn`),
the precision ``"auto"`` picks and its memory layout, on random images, after one warm-up step.
"""

from __future__ import annotations

import time

import torch

from ..fast.precision import resolve_precision
from ..models import ConvVAE
from ..train import make_optimizer, train_step, vae_loss_fn
from ..utils import get_device

__all__ = ["seconds_per_epoch"]


def seconds_per_epoch(batch_size: int = 256, steps: int = 4, images: int = 60_000,
                      device: str | torch.device = "auto") -> float:
    """Seconds one training epoch of ``ConvVAE(latent_dim=2)`` over ``images`` images takes
    here, extrapolated from ``steps`` timed calls of ``train_step`` on a random
    ``[batch_size, 1, 28, 28]`` batch.

    The global RNG is left as it was."""
    dev = get_device(device)
    precision = resolve_precision("auto", dev)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = ConvVAE().to(dev)
        x = torch.rand(batch_size, 1, 28, 28, device=dev)
        if precision.channels_last:
            model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        optimizer = make_optimizer(model, 5e-4, dev)
        loss_fn = vae_loss_fn(model)
        seconds = []
        for _ in range(steps + 1):  # the first step warms up
            t0 = time.perf_counter()
            train_step(model, x, None, loss_fn, optimizer, precision)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            seconds.append(time.perf_counter() - t0)
    return sum(seconds[1:]) / steps * (images / batch_size)
