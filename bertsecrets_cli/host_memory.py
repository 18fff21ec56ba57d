"""How extract's process uses the C heap: fast (glibc's own policy) or flat (peak memory flat in the number of examples).

Measured on the 2-core CPU with the embedded MiniLM (docs/guide/extract.md, "Memory and speed"):

* ``fast``: glibc's defaults. Freed blocks are reused without a page fault, as in any PyTorch program, so the
  forward pass costs what a bare forward costs. But glibc raises its mmap threshold as large blocks are freed
  (up to 32 MiB), after which the forward's temporaries of varying shapes live on the heap and fragment it:
  peak RSS grows with the longest batches seen, about 10% per tenfold examples on long-tailed data (the bare
  forward alone grows 7%).
* ``flat``: every block of 128 KiB or more is a mapping of its own, returned to the system when freed: peak RSS
  stays within 5% from 100 to 1,000 and from 500 to 5,000 examples. The price is a page fault for every page
  of every large temporary of the forward pass, each time: on a CPU that is 30-50% more time for a
  MiniLM-sized model (less for wider ones), on a GPU nearly nothing (the forward's temporaries are on the
  device).
* ``auto`` (the default): flat when the model runs on an accelerator, fast on the CPU.

Process-wide and sticky: glibc has no way back to its adaptive threshold once one is set, so in one Python
process (a notebook) the first flat extract makes every later allocation of the process flat too.
"""

from __future__ import annotations

import sys

MEMORY_MODES = ("auto", "fast", "flat")
FLAT_MMAP_THRESHOLD = 1 << 17  # 128 KiB: glibc's initial threshold, kept fixed

_applied: str | None = None  # "flat" once set in this process


def resolve_memory(mode: str, device_type: str) -> str:
    """``auto`` -> flat on an accelerator, fast on the CPU (``device_type``: "cpu", "cuda", ...); ``fast``/``flat`` as given."""
    if mode not in MEMORY_MODES:
        raise ValueError(f"unknown memory mode {mode!r}: choose one of {', '.join(MEMORY_MODES)}")
    if mode != "auto":
        return mode
    return "fast" if device_type == "cpu" else "flat"


def apply_memory(mode: str) -> str:
    """Set the process's heap policy for ``mode`` (fast or flat); returns the policy in force afterwards.

    ``flat`` fixes glibc's mmap threshold (mallopt M_MMAP_THRESHOLD), which also stops its adaptive rise; off
    Linux or glibc nothing happens. ``fast`` changes nothing, and cannot undo an earlier ``flat`` in this process."""
    global _applied
    if mode == "flat" and _applied != "flat" and sys.platform.startswith("linux"):
        import ctypes
        import ctypes.util

        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            if libc.mallopt(-3, FLAT_MMAP_THRESHOLD) == 1:  # M_MMAP_THRESHOLD; 1 on success
                _applied = "flat"
        except (OSError, AttributeError):
            pass
    return _applied or "fast"
