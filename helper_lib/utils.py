"""What every notebook needs at the start: seeding, the device, determinism, smoke mode, and the
one error type for a setting that cannot work.

Everything here is device-agnostic: nothing is ever hard-coded to ``cuda:N``.
"""

from __future__ import annotations

import contextlib
import os
import random
import warnings
from collections.abc import Iterator

import numpy as np
import torch

__all__ = [
    "SettingsError",
    "check_whole_number",
    "set_seed",
    "get_device",
    "deterministic",
    "env_flag",
    "smoke_mode",
]


class SettingsError(ValueError):
    """A setting (an argument, a command-line flag or an environment variable) cannot work.

    Raised before any work starts; its message says what is wrong and what to do. The command
    line prints it as one ``error: ...`` line and exits with status 2. A ``ValueError``, so
    ``except ValueError`` catches it too.
    """


def check_whole_number(name: str, value: object, minimum: int, hint: str = "") -> None:
    """Raise :class:`SettingsError` unless ``value`` is an ``int`` (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SettingsError(f"{name} must be a whole number >= {minimum}, got {value!r}"
                            + (f" ({hint})" if hint else ""))


def set_seed(seed: int) -> None:
    """Seed Python's ``random``, NumPy and PyTorch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds all CUDA devices


def get_device(device: str | torch.device = "auto") -> torch.device:
    """Return a ``torch.device``; ``"auto"`` picks CUDA, then Apple MPS, then the CPU."""
    if isinstance(device, torch.device):
        return device
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


#: The cuBLAS workspace setting that deterministic CUDA matmuls need. cuBLAS reads it once, when
#: it starts, so ``import helper_lib`` sets it (``helper_lib/__init__.py``, before any CUDA work,
#: unless the user set it already); setting it later, inside :func:`deterministic`, came too late.
CUBLAS_ENV_VAR, CUBLAS_DETERMINISTIC = "CUBLAS_WORKSPACE_CONFIG", ":4096:8"


@contextlib.contextmanager
def deterministic(enabled: bool = True) -> Iterator[None]:
    """Context manager that asks PyTorch for deterministic kernels, and restores the old setting.

    Built on ``torch.use_deterministic_algorithms``; it also turns off cuDNN autotuning. The
    cuBLAS workspace variable that deterministic CUDA matmuls need is set when helper_lib is
    imported (cuBLAS reads it only when it starts); if CUDA started before that without it, a
    ``RuntimeWarning`` says that CUDA matmuls may not be deterministic. On the CPU the lecture's
    model is deterministic anyway for a fixed thread count; this matters on GPUs.
    """
    if enabled and torch.cuda.is_initialized() and not os.environ.get(CUBLAS_ENV_VAR):
        warnings.warn(f"CUDA started before {CUBLAS_ENV_VAR} was set, so cuBLAS matmuls may not "
                      f"be deterministic: import helper_lib (or set {CUBLAS_ENV_VAR}="
                      f"{CUBLAS_DETERMINISTIC}) before the first CUDA call", RuntimeWarning,
                      stacklevel=3)
    old_algos = torch.are_deterministic_algorithms_enabled()
    old_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    old_bench = torch.backends.cudnn.benchmark
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.benchmark = not enabled and old_bench
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_algos, warn_only=old_warn_only)
        torch.backends.cudnn.benchmark = old_bench


def env_flag(name: str, default: bool) -> bool:
    """An on/off environment variable: ``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/
    ``off`` (any case); unset, empty or anything else means ``default``."""
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return default


def smoke_mode() -> bool:
    """True when the environment variable ``VAE_SMOKE`` is set to a true value (``1``, ``true``).

    Notebooks switch to tiny settings in smoke mode; CI runs them that way.
    """
    return env_flag("VAE_SMOKE", False)


