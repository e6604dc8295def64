"""glibc's allocator, tuned for training on a CPU (:func:`tune_cpu_allocator`)."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

from ..utils import env_flag

__all__ = ["ALLOCATOR_ENV_VAR", "tune_cpu_allocator"]

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

