"""Start-up of the command line: ``bertsecrets --help`` and ``bertsecrets show STORE``, as a user runs them.

Each command runs as a fresh process (the console script next to this Python, else ``python -m
bertsecrets_cli``), ``--repeats`` times interleaved; prints min and median wall and CPU time, and which heavy
modules (torch, transformers, matplotlib, datasets, h5py) each one imported. Target (issue 18): under
0.5 s. The store for ``show`` is a 24-example extraction made once beforehand (not timed).
Usage: python benchmarks/startup.py [--repeats 5] [--store STORE]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HEAVY = ("torch", "transformers", "matplotlib", "datasets", "h5py", "scipy", "pandas", "pydantic")
# prints the heavy modules a command imported, after it ran (the process's own sys.modules)
PROBE = (
    "import sys, runpy\n"
    "sys.argv = ['bertsecrets', *sys.argv[1:]]\n"
    "try:\n"
    "    runpy.run_module('bertsecrets_cli', run_name='__main__')\n"
    "except SystemExit:\n"
    "    pass\n"
    f"print('HEAVY', ','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
)


def console_script() -> list[str]:
    """The installed ``bertsecrets`` of this interpreter, as users run it; else the module."""
    exe = Path(sys.executable).with_name("bertsecrets")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("bertsecrets")
    return [found] if found else [sys.executable, "-m", "bertsecrets_cli"]


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run; CPU (user + system of the child) stays honest on a loaded machine."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def heavy_imports(args: list[str]) -> str:
    res = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True)
    line = [ln for ln in res.stderr.splitlines() if ln.startswith("HEAVY")][-1]
    return line[len("HEAVY") :].strip() or "none"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--store", help="a store for 'show' (default: a 24-example extraction made here)")
    a = ap.parse_args()
    exe = console_script()
    with tempfile.TemporaryDirectory() as d:
        store = a.store
        if store is None:
            store = str(Path(d) / "s.h5")
            subprocess.run([*exe, "extract", "--limit", "24", "--device", "cpu", "-q", "-o", store], stdout=subprocess.DEVNULL, check=True)
        commands = {"--help": ["--help"], "show STORE": ["show", store]}
        for args in commands.values():  # warm the file cache: first runs must not count
            timed([*exe, *args])
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in commands}
        for _ in range(a.repeats):  # interleaved: the machine is shared and noisy
            for k, args in commands.items():
                times[k].append(timed([*exe, *args]))
        print(f"{' '.join(exe)}; {a.repeats} runs each, interleaved; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
        for k, args in commands.items():
            wall, cpu = [t[0] for t in times[k]], [t[1] for t in times[k]]
            print(f"bertsecrets {k:<11} wall min {min(wall):.3f} s  median {statistics.median(wall):.3f} s  (target < 0.5 s); "
                  f"CPU min {min(cpu):.3f} s  median {statistics.median(cpu):.3f} s; heavy imports: {heavy_imports(args)}")


if __name__ == "__main__":
    main()
