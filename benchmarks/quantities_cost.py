"""What norms, rollout and flow cost in extract, and peak memory flat in N (issue 17).

Targets: extract --quantities weights,norms within 1.25x of weights alone; rollout adds at most 5%;
peak RSS of a norms extract at N within 10% of N/10 (each in a fresh process). Flow is reported, not
targeted: it solves layers x T^2 max-flow problems per example, so it is offered for short inputs only.
Runs are interleaved (weights, norms, rollout, ...) and repeated; min and median ratios are printed
because the machine is shared. Embedded MiniLM (6 x 12), CPU, demo sentences repeated to N.
Usage: python benchmarks/quantities_cost.py [--n 400] [--reps 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))

from extract_overhead import make_data  # noqa: E402  (same data as the extract benchmark)

VARIANTS = {
    "weights": ("weights",),
    "norms": ("weights", "norms"),
    "rollout": ("weights", "rollout"),
    "norms+rollout": ("weights", "norms", "rollout"),
}


def timed(data: Path, out: Path, quantities: tuple[str, ...], batch_size: int, device: str, max_length: int = 128) -> float:
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    t0 = time.perf_counter()
    run_extract(ExtractOptions(data=DataOptions(task="sst2", data=str(data)), device=device, batch_size=batch_size, quiet=True,
                               quantities=quantities, max_length=max_length, force=True), out, command="benchmark")
    return time.perf_counter() - t0


def child(n: int, quantities: str, device: str) -> None:
    """Peak RSS (MiB) of one extract of n examples with these quantities, in a fresh process."""
    import torch

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as d:
        data = make_data(n, Path(d))
        timed(data, Path(d) / "o.h5", tuple(quantities.split(",")), 32, device)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--flow-n", type=int, default=20, help="examples for the flow timing (max length 32)")
    ap.add_argument("--child", type=int)
    ap.add_argument("--quantities", default="weights,norms")
    a = ap.parse_args()
    if a.child:
        child(a.child, a.quantities, a.device)
        return
    from bertsecrets_cli.model.load import load_model

    load_model(None, device=a.device)  # warm caches: first-load costs must count against no variant
    times: dict[str, list[float]] = {k: [] for k in VARIANTS}
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        data = make_data(a.n, folder)
        timed(data, folder / "warm.h5", ("weights", "norms", "rollout"), a.batch_size, a.device)
        for rep in range(a.reps):
            for name, q in VARIANTS.items():
                times[name].append(timed(data, folder / f"{name}.h5", q, a.batch_size, a.device))
        sizes = {name: (folder / f"{name}.h5").stat().st_size for name in VARIANTS}
        (folder / "f").mkdir()
        fdata = make_data(a.flow_n, folder / "f")
        flow_w = timed(fdata, folder / "fw.h5", ("weights",), a.batch_size, a.device, max_length=32)
        flow_f = timed(fdata, folder / "ff.h5", ("weights", "flow"), a.batch_size, a.device, max_length=32)
    base = times["weights"]
    print(f"examples {a.n}, batch {a.batch_size}, embedded MiniLM (6x12), device {a.device}, {a.reps} interleaved repetitions")
    for name in VARIANTS:
        ratios = [t / b for t, b in zip(times[name], base)]
        print(f"{name:14s} min {min(times[name]):6.2f} s  median {statistics.median(times[name]):6.2f} s  "
              f"ratio to weights: min {min(ratios):.3f} median {statistics.median(ratios):.3f}  file {sizes[name] / 2**20:.1f} MiB")
    print(f"flow ({a.flow_n} examples, --max-length 32): {flow_f:.2f} s vs {flow_w:.2f} s weights only ({flow_f / flow_w:.1f}x)")
    mem = {}
    for n in (max(10, a.n // 10), a.n):
        res = subprocess.run([sys.executable, __file__, "--child", str(n), "--quantities", "weights,norms,rollout", "--device", a.device],
                             capture_output=True, text=True, check=True)
        mem[n] = float(res.stdout.strip().splitlines()[-1])
    lo, hi = sorted(mem)
    print(f"peak RSS with norms+rollout: {mem[lo]:.0f} MiB at {lo} examples, {mem[hi]:.0f} MiB at {hi}; ratio {mem[hi] / mem[lo]:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
