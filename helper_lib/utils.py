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
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "SettingsError",
    "check_whole_number",
    "set_seed",
    "get_device",
    "deterministic",
    "cpu_kind",
    "cpu_has_native_bf16",
    "PRECISION_ENV_VAR",
    "cuda_has_native_bf16",
    "Precision",
    "resolve_precision",
    "env_flag",
    "smoke_mode",
    "ALLOCATOR_ENV_VAR",
    "tune_cpu_allocator",
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
#: it starts, so it is set when helper_lib is imported (before any CUDA work, unless the user set
#: it already); setting it later, inside :func:`deterministic`, came too late.
CUBLAS_ENV_VAR, CUBLAS_DETERMINISTIC = "CUBLAS_WORKSPACE_CONFIG", ":4096:8"
if not torch.cuda.is_initialized():
    os.environ.setdefault(CUBLAS_ENV_VAR, CUBLAS_DETERMINISTIC)


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


#: ``ONEDNN_MAX_CPU_ISA`` values (upper case) that still let oneDNN use AVX512-BF16 or AMX.
_BF16_ISA_CAPS = ("ALL", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX",
                  "AVX512_CORE_AMX_FP16")


def _onednn_isa_cap() -> str:
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL"
    return cap.strip().upper()


def cpu_kind() -> str:
    """This CPU's class for training speed, as far as oneDNN may use it.

    ``"amx"`` (Intel Xeon from Sapphire Rapids on), ``"avx512-bf16"`` (native bf16 dot
    products without AMX: AMD Zen 4/5, Intel Cooper Lake), ``"avx512"`` (AVX-512 without bf16:
    Skylake-X to Ice/Tiger Lake), ``"avx2"`` (most laptops) or ``"other"``. An
    ``ONEDNN_MAX_CPU_ISA`` (or ``DNNL_MAX_CPU_ISA``) cap lowers the answer accordingly.
    """
    try:
        amx = bool(torch.cpu._is_amx_tile_supported())
        avx512_bf16 = bool(torch.cpu._is_avx512_bf16_supported())
        avx512 = bool(torch.cpu._is_avx512_supported())
        avx2 = bool(torch.cpu._is_avx2_supported())
    except (AttributeError, RuntimeError):  # builds without cpuinfo
        return "other"
    cap = _onednn_isa_cap()
    capped_amx = cap == "ALL" or ("AMX" in cap)
    capped_bf16 = cap in _BF16_ISA_CAPS or cap.startswith("AVX10") or capped_amx
    capped_avx512 = capped_bf16 or cap.startswith("AVX512")
    if amx and capped_amx:
        return "amx"
    if (avx512_bf16 or amx) and capped_bf16:
        return "avx512-bf16"
    if avx512 and capped_avx512:
        return "avx512"
    if avx2 and cap != "SSE41" and cap != "AVX":
        return "avx2"
    return "other"


def cpu_has_native_bf16() -> bool:
    """True where this CPU computes bf16 dot products natively, so bf16 autocast trains faster.

    That is AMX (Intel Xeon from Sapphire Rapids on) or the AVX512-BF16 instructions (AMD Zen 4
    and 5, Intel Cooper Lake), and oneDNN must have a bf16 path (it reports one on every AVX-512
    CPU, emulated or not, so its flag alone is not enough). Measured for this course's
    ``ConvVAE`` (``benchmarks/README.md``): bf16 autocast trains 2.2x faster than fp32 with AMX
    (Intel Xeon) and 1.75x faster on an AMD EPYC Zen 4 with AVX512-BF16, but 0.24x as fast on
    AVX-512 without bf16 instructions (Intel laptops of 2019-2021), where oneDNN emulates it.
    Respects an ``ONEDNN_MAX_CPU_ISA`` (or ``DNNL_MAX_CPU_ISA``) cap below AVX512_CORE_BF16.
    """
    try:
        onednn_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # builds without oneDNN
        return False
    return onednn_bf16 and cpu_kind() in ("amx", "avx512-bf16")


#: The environment variable that overrides ``precision="auto"`` (notebooks and the CLI).
PRECISION_ENV_VAR = "VAE_PRECISION"


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

    ``"auto"`` first reads the environment variable ``VAE_PRECISION`` (``fp32``, ``bf16`` or
    ``auto``), so a notebook or the command line can be switched without editing it. Left at
    ``auto`` (or unset), it means bf16 autocast where bf16 is native and faster: on CUDA GPUs
    with bf16 tensor cores (:func:`cuda_has_native_bf16`) and on CPUs with AMX or AVX512-BF16
    (:func:`cpu_has_native_bf16`), and fp32 everywhere else (AVX2-only CPUs, AVX-512 without
    bf16, MPS). An explicit ``"bf16"`` or ``"fp32"`` always wins. channels_last is used on CPU
    and CUDA in every precision (it speeds up the convolutions there, and bf16 *without*
    channels_last is slower than fp32 on CPU); not on MPS. The choice is a fixed rule, not a
    timing, so the same seed gives the same run on one machine.

    Raises:
        ValueError: an unknown ``precision``, or an unknown value in ``VAE_PRECISION``.
    """
    choices = ("auto", "bf16", "fp32")
    if precision not in choices:
        raise SettingsError(f"precision must be 'auto', 'bf16' or 'fp32', got {precision!r}")
    channels_last = device.type in ("cpu", "cuda")
    if precision == "auto":
        env = os.environ.get(PRECISION_ENV_VAR, "").strip().lower()
        if env and env not in choices:
            raise SettingsError(f"the environment variable {PRECISION_ENV_VAR} must be fp32, bf16 "
                             f"or auto, got {env!r}")
        precision = env or "auto"
    if precision == "auto":
        if (device.type == "cuda" and cuda_has_native_bf16(device)) or (
            device.type == "cpu" and cpu_has_native_bf16()
        ):
            precision = "bf16"
        else:
            precision = "fp32"
    dtype = torch.bfloat16 if precision == "bf16" else None
    return Precision(precision, dtype, channels_last)


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


_ALLOCATOR_TUNED = False
#: ``VAE_TUNE_ALLOCATOR=0`` leaves glibc's allocator as it is.
ALLOCATOR_ENV_VAR = "VAE_TUNE_ALLOCATOR"


def tune_cpu_allocator() -> bool:
    """Keep freed activation buffers in glibc's heap instead of returning them to the OS.

    By default glibc serves every block over a (dynamic) threshold with ``mmap`` and gives it
    back with ``munmap`` on free, so each training step page-faults its activations in anew;
    on a 2-core CPU that kernel time made an MNIST epoch about 1.6x slower. Raising the mmap
    threshold to its 32 MiB maximum and disabling heap trimming (``mallopt``) removes it. The
    price: the process keeps its peak heap until it exits.

    This changes the whole process for good, so only the training functions call it, when
    training starts on a CPU: never an import, an evaluation, a plot or a slider. Applied once
    per process; a no-op (returning ``False``) outside Linux/glibc and with
    ``VAE_TUNE_ALLOCATOR=0``.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    if not env_flag(ALLOCATOR_ENV_VAR, True):
        return False
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
