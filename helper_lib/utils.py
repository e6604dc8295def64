"""Seeding, device selection, determinism and numeric-precision choices.

Everything here is device-agnostic: nothing is ever hard-coded to ``cuda:N``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "set_seed",
    "get_device",
    "deterministic",
    "cpu_has_amx_bf16",
    "cuda_has_native_bf16",
    "Precision",
    "resolve_precision",
    "smoke_mode",
    "tune_cpu_allocator",
]


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


@contextlib.contextmanager
def deterministic(enabled: bool = True) -> Iterator[None]:
    """Context manager that asks PyTorch for deterministic kernels, and restores the old setting.

    Built on ``torch.use_deterministic_algorithms``; it also turns off cuDNN autotuning and sets
    the cuBLAS workspace variable that deterministic CUDA matmuls need. On the CPU the lecture's
    model is deterministic anyway for a fixed thread count; this matters on GPUs.
    """
    old_algos = torch.are_deterministic_algorithms_enabled()
    old_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    old_bench = torch.backends.cudnn.benchmark
    old_cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    if enabled and old_cublas is None:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.benchmark = not enabled and old_bench
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_algos, warn_only=old_warn_only)
        torch.backends.cudnn.benchmark = old_bench
        if old_cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def cpu_has_amx_bf16() -> bool:
    """True when oneDNN runs bf16 convolutions on AMX tiles here: the CPU case where bf16 pays off.

    oneDNN reports bf16 as "supported" on every AVX-512 CPU, so its flag alone is not enough.
    Measured for this course's ``ConvVAE`` (``benchmarks/README.md``, "bf16 by instruction
    set"), bf16 autocast trains 2.2x *faster* than fp32 with AMX, but 0.86x as fast with the
    AVX512-BF16 instructions alone (e.g. Cooper Lake, AMD Zen 4), and 0.24x on AVX-512 without
    bf16 instructions (e.g. Intel laptops of 2019-2021), where oneDNN emulates it. Also False
    when the environment variable ``ONEDNN_MAX_CPU_ISA`` (or ``DNNL_MAX_CPU_ISA``) keeps
    oneDNN below AMX.
    """
    try:
        amx = bool(torch.cpu._is_amx_tile_supported())
        onednn_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # builds without cpuinfo or oneDNN
        return False
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL"
    return amx and onednn_bf16 and (cap.upper() == "ALL" or "AMX" in cap.upper())


def cuda_has_native_bf16(device: torch.device) -> bool:
    """True for GPUs with bf16 tensor cores (NVIDIA compute capability 8.0+, i.e. Ampere on; ROCm).

    Older GPUs (e.g. the T4 or V100) only emulate bf16, so ``"auto"`` stays in fp32 there.
    """
    if torch.version.hip:
        return True
    return torch.cuda.get_device_capability(device) >= (8, 0)


@dataclass(frozen=True)
class Precision:
    """How a model runs: the autocast dtype (``None`` means plain fp32) and the memory format."""

    name: str  # "bf16" or "fp32"
    autocast_dtype: torch.dtype | None
    channels_last: bool

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """An autocast context for ``device`` (a no-op for fp32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """Turn ``"auto"``, ``"bf16"`` or ``"fp32"`` into a :class:`Precision` for ``device``.

    ``"auto"`` means bf16 autocast where it is native and faster: on CUDA GPUs with bf16 tensor
    cores (:func:`cuda_has_native_bf16`) and on CPUs with AMX (:func:`cpu_has_amx_bf16`), and
    fp32 everywhere else, including AVX-512 CPUs whose bf16 is emulated or has no AMX (slower
    than fp32 there). channels_last is used on CPU and CUDA in every precision (it speeds up the
    convolutions there, and bf16 *without* channels_last is slower than fp32 on CPU); not on MPS.
    """
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', got {precision!r}")
    channels_last = device.type in ("cpu", "cuda")
    if precision == "auto":
        if (device.type == "cuda" and cuda_has_native_bf16(device)) or (
            device.type == "cpu" and cpu_has_amx_bf16()
        ):
            precision = "bf16"
        else:
            precision = "fp32"
    dtype = torch.bfloat16 if precision == "bf16" else None
    return Precision(precision, dtype, channels_last)


def smoke_mode() -> bool:
    """True when the environment variable ``VAE_SMOKE`` is set to a true value (``1``, ``true``).

    Notebooks switch to tiny settings in smoke mode; CI runs them that way.
    """
    return os.environ.get("VAE_SMOKE", "0").strip().lower() in ("1", "true", "yes", "on")


_ALLOCATOR_TUNED = False


def tune_cpu_allocator() -> bool:
    """Keep freed activation buffers in glibc's heap instead of returning them to the OS.

    By default glibc serves every block over a (dynamic) threshold with ``mmap`` and gives it
    back with ``munmap`` on free, so each training step page-faults its activations in anew;
    on a 2-core CPU that kernel time made an MNIST epoch about 1.6x slower. Raising the mmap
    threshold to its 32 MiB maximum and disabling heap trimming (``mallopt``) removes it. The
    price: the process keeps its peak heap until it exits.

    Applied once per process; a no-op (returning ``False``) outside Linux/glibc.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
        ok = libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024) == 1
        ok = libc.mallopt(m_trim_threshold, 2**31 - 1) == 1 and ok
    except (OSError, AttributeError):  # musl and other libcs have no mallopt
        return False
    _ALLOCATOR_TUNED = ok
    return ok
