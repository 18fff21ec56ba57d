"""Share of mutants killed per package, from mutmut's results (tools/mutation.sh); the survivors listed by name.

Usage: python tools/mutation_score.py [GLOB...]   (the mutant-name globs that were run; default: every mutant)
"""

from __future__ import annotations

import fnmatch
import subprocess
import sys
from collections import Counter, defaultdict


def main(globs: list[str]) -> None:
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], capture_output=True, text=True, check=True).stdout
    counts: dict[str, Counter] = defaultdict(Counter)
    survivors: list[str] = []
    for line in out.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if not name or (globs and not any(fnmatch.fnmatch(name, g) for g in globs)) or status == "not checked":
            continue
        package = name.split(".")[1]
        counts[package][status] += 1
        if status != "killed":
            survivors.append(f"{name}: {status}")
    print(f"{'package':10} {'mutants':>8} {'killed':>7} {'score':>6}  other")
    for package in ("analysis", "store", "jobs"):
        c = counts.get(package)
        if not c:
            continue
        n = sum(c.values())
        other = ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if k != "killed")
        print(f"{package + '/':10} {n:8d} {c['killed']:7d} {100 * c['killed'] / n:5.1f}%  {other}")
    if survivors:
        print("\nnot killed (python -m mutmut show NAME for the change):")
        print("\n".join("  " + s for s in survivors))


if __name__ == "__main__":
    main(sys.argv[1:])
