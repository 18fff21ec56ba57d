"""Each side of a timing comparison in a process of its own, run interleaved from the parent.

Why processes: extract tunes the C allocator of its process (jobs.extract.bound_heap: glibc's mmap
threshold), and that setting is process-wide and sticky. Timed in one process, a bare forward run after an
extract pays extract's allocator setting too (every large tensor a fresh mmap: ~10x the page faults), so
the baseline slows down and extract's ratio looks better than what a user sees. Here each side keeps its
own process (allocator, caches, threads) for the whole comparison, as a user's separate runs would, and
the parent still interleaves the repeats in rotating order, so a noisy machine hits both sides alike.

Protocol (lines on the child's stdin/stdout): the child builds its side, runs it once as a warm-up and
prints ``ready``; each ``run`` is answered with ``{"wall": s, "cpu": s}`` (CPU: the whole child process,
all threads); ``quit`` ends it. Anything else the child prints goes to its stderr.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def serve(side: Callable[[], Any]) -> None:
    """The child's loop: warm up, then time ``side`` once per ``run`` line."""
    out = sys.stdout
    sys.stdout = sys.stderr  # whatever the side prints must not break the protocol
    side()
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        if cmd != "run":
            raise SystemExit(f"sides: unknown command {cmd!r}")
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0, c0 = time.perf_counter(), time.process_time()
        side()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        out.write(json.dumps({"wall": wall, "cpu": cpu, "sys": r1.ru_stime - r0.ru_stime, "faults": r1.ru_minflt - r0.ru_minflt}) + "\n")
        out.flush()


class Side:
    """A child process serving one side: ``Side(name, argv)`` starts it and waits for its warm-up."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.proc = subprocess.Popen([sys.executable, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.times: list[dict[str, float]] = []
        self._expect("ready")

    def _expect(self, what: str) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"side {self.name}: the child ended (exit {self.proc.wait()})")
        if what and line.strip() != what:
            raise RuntimeError(f"side {self.name}: expected {what!r}, got {line.strip()!r}")
        return line

    def run(self) -> dict[str, float]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        t = json.loads(self._expect(""))
        self.times.append(t)
        return t

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            self.proc.wait()

    def __enter__(self) -> Side:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def interleaved(sides: list[Side], repeats: int) -> None:
    """``repeats`` rounds, each side once per round, the order rotating by one each round."""
    for rep in range(repeats):
        k = rep % len(sides)
        for s in sides[k:] + sides[:k]:
            s.run()


def ratios(num: Side, den: Side, key: str = "wall") -> list[float]:
    """Per round: ``num``'s time over ``den``'s."""
    return [a[key] / b[key] for a, b in zip(num.times, den.times)]
