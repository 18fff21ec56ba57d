"""The one place that turns a --device value ('auto', 'cpu', 'cuda', 'cuda:N') into a torch device.

Every command that runs torch (extract, ablate, framenet, finetune, classify run/train) resolves its option here,
so they accept the same values and refuse an absent GPU with the same one-line message.
"""

from __future__ import annotations

import os
from typing import Any

from bertsecrets_cli.errors import InputError

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def check_device_spec(spec: str | None) -> str:
    """The spelling of ``--device`` alone, without importing torch: for work that may not need a device (the
    rules classifier, a run refused before it starts), so a mistyped value is still refused at once."""
    s = (spec or "auto").strip().lower()
    if s in ("auto", "cpu", "cuda") or (s.startswith("cuda:") and s[5:].isdigit()):
        return s
    raise InputError(f"--device {spec!r}: expected {DEVICE_CHOICES}")


def device_type(device: Any) -> str:
    """"cpu", "cuda", ... of a torch.device or a spec such as "cuda:1"."""
    import torch

    return torch.device(device).type


def cpu_threads() -> int:
    """The CPU threads this process may use: its CPU affinity (a cgroup or `taskset` limits it), and no more than
    Slurm's --cpus-per-task. torch's own default counts every physical core of the node, so on a shared node or
    in a Slurm job it runs more threads than it has CPUs, and fine-tuning went 5x slower from the contention."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm.isdigit() and int(slurm) > 0:
        n = min(n, int(slurm))
    return max(1, n)


def set_default_threads() -> None:
    """torch's intra-op threads = cpu_threads(), unless OMP_NUM_THREADS (or MKL_NUM_THREADS) says otherwise."""
    if os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"):
        return
    import torch

    n = cpu_threads()
    if n < torch.get_num_threads():
        torch.set_num_threads(n)


def resolve_device(spec: str | None = "auto") -> Any:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> torch.device; asking for absent CUDA (or a missing index) is an InputError."""
    s = check_device_spec(spec)
    import torch

    set_default_threads()

    if s == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if s == "cpu":
        return torch.device("cpu")
    if s == "cuda" or s.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {spec}: CUDA is not available on this machine", hint="use --device cpu or auto")
        try:
            dev = torch.device(s)
        except RuntimeError:
            raise InputError(f"--device {spec!r}: expected {DEVICE_CHOICES}") from None
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present")
        return dev
    raise InputError(f"--device {spec!r}: expected {DEVICE_CHOICES}")


def device_name(spec: str | None = "auto") -> str:
    """:func:`resolve_device` as the string torch and provenance records take ('cpu', 'cuda', 'cuda:1')."""
    return str(resolve_device(spec))


def local_device(spec: str) -> str:
    """Under torchrun on GPUs each process loads onto its own GPU (LOCAL_RANK); else ``spec`` as given."""
    s = (spec or "auto").strip().lower()
    if _world_size() > 1 and s in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            return f"cuda:{int(os.environ.get('LOCAL_RANK', '0') or 0)}"
    return spec


def _world_size() -> int:
    return max(1, int(os.environ.get("WORLD_SIZE", "1") or 1))
