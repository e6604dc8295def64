"""Which numeric precision and memory layout a model trains in, chosen from the hardware.

:func:`resolve_precision` turns ``"auto"`` into bf16 autocast where this CPU or GPU computes
bf16 natively (:func:`cpu_kind`, :func:`cpu_has_native_bf16`, :func:`cuda_has_native_bf16`),
and fp32 elsewhere. Why these rules, with the measurements: ``benchmarks/README.md``.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from ..utils import SettingsError

__all__ = ["cpu_kind", "cpu_has_native_bf16", "PRECISION_ENV_VAR", "cuda_has_native_bf16",
           "Precision", "resolve_precision"]


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

