"""Where tensors go: the one rule every stage shares."""

from __future__ import annotations

import ctypes
import functools
import os
import sys

import torch


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`device` as a torch.device; None means CUDA when available, else the CPU."""
    if device is not None:
        try:
            device = torch.device(device)
        except RuntimeError:
            raise ValueError(
                f"device '{device}': not a torch device; allowed: cpu, cuda, cuda:N"
            ) from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device '{device}': no CUDA device is available here (use cpu)")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


@functools.cache
def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse instead of handing it back to the OS.

    The engine allocates blocks of 128 MiB and more again and again (score blocks, pairwise
    distances, float64 copies). glibc serves each from a fresh mmap whose pages fault on first
    touch, ~0.5 s per GiB on a 2-core VM, more than the arithmetic on them: bench_engine's
    aggfixed at full size took 69 s with, 54 s without. With mmap off and no trimming below
    2 GiB of free memory, freed blocks are reused (the peak is unchanged: what is freed was
    resident before). Process-wide, so the entry points that run the engine call it (imprint.api,
    the benchmarks), never an import. IMPRINT_KEEP_FREED_MEMORY=0 turns it off. Returns whether
    it applied (glibc only).
    """
    if os.environ.get("IMPRINT_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith(
        "linux"
    ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own libc
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
