"""What norms, rollout and flow cost in extract, and peak memory flat in N (issue 17).

Targets: extract --quantities weights,norms within 1.25x of weights alone; rollout adds at most 5%;
peak RSS of a norms extract at N within 10% of N/10 (each in a fresh process). Flow is reported, not
targeted: it solves layers x T^2 max-flow problems per example, so it is offered for short inputs only.
Runs are interleaved (weights, norms, rollout, ...) and repeated; min and median ratios are printed
because the machine is shared. Embedded MiniLM (6 x 12), CPU, demo sentences repeated to N.
Usage: python benchmarks/quantities_cost.py [--n 400] [--reps 3] [--device cpu] [--per-batch]
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


def per_batch(data: Path, reps: int, batch_size: int, device: str) -> dict[str, list[float]]:
    """The compute of extract per batch (forward, statistics, host copy, quantities), variants run back to back
    on every batch in a rotating order; seconds summed per rep. On the CPU torch runs on one thread and the clock
    is that thread's CPU time, which other jobs on a shared machine barely move (wall time moved by +-30% here).
    File writing is left out (it is in the end-to-end timings)."""
    import torch

    clock = time.perf_counter
    if device == "cpu":
        torch.set_num_threads(1)
        clock = time.thread_time

    from bertsecrets_cli.model.batch_stats import batch_head_stats
    from bertsecrets_cli.jobs.extract import DataOptions, load_examples
    from bertsecrets_cli.jobs.quantities import batch_extras
    from bertsecrets_cli.model.attention import forward_with_norms
    from bertsecrets_cli.model.load import load_model
    from bertsecrets_cli.model.tokenize import collate, encode_examples, token_masks

    _, ds = load_examples(DataOptions(task="sst2", data=str(data)))
    lm = load_model(None, device=device)
    enc = encode_examples(lm.tokenizer, [(e.text_a, e.text_b) for e in ds.examples], 128)
    order = sorted(range(len(enc)), key=lambda i: enc[i].length)
    batches = [[enc[i] for i in order[b : b + batch_size]] for b in range(0, len(order), batch_size)]

    def run(batch_enc: list, q: tuple[str, ...]) -> None:  # noqa: ANN001
        batch = collate(batch_enc, lm.tokenizer.pad_token_id, lm.device, lm.model_type)
        _, probs, norms = forward_with_norms(lm.model, batch, lm.n_layers, norms="norms" in q)
        batch_head_stats(probs, *token_masks(batch_enc, lm.device))
        batch_extras(probs, norms, batch_enc, q, dtype=torch.float16)
        probs.to(torch.float16).cpu().numpy()
        if lm.device.type == "cuda":
            torch.cuda.synchronize()

    out: dict[str, list[float]] = {k: [] for k in VARIANTS}
    for rep in range(reps):
        sums = dict.fromkeys(VARIANTS, 0.0)
        for bi, be in enumerate(batches):
            names = list(VARIANTS)
            for k in range(len(names)):
                name = names[(bi + rep + k) % len(names)]
                t0 = clock()
                run(be, VARIANTS[name])
                sums[name] += clock() - t0
        for k, v in sums.items():
            out[k].append(v)
    return out


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
    ap.add_argument("--per-batch", action="store_true", help="only the per-batch compute comparison (robust on a loaded machine)")
    ap.add_argument("--child", type=int)
    ap.add_argument("--quantities", default="weights,norms")
    a = ap.parse_args()
    if a.child:
        child(a.child, a.quantities, a.device)
        return
    from bertsecrets_cli.model.load import load_model

    load_model(None, device=a.device)  # warm caches: first-load costs must count against no variant
    if a.per_batch:
        with tempfile.TemporaryDirectory() as d:
            pb = per_batch(make_data(a.n, Path(d)), a.reps, a.batch_size, a.device)
        what = "CPU seconds of one thread" if a.device == "cpu" else "wall seconds"
        print(f"per-batch compute ({what}), {a.n} examples, batch {a.batch_size}, device {a.device}, {a.reps} repetitions (variants back to back per batch)")
        for name in VARIANTS:
            ratios = [t / b for t, b in zip(pb[name], pb["weights"])]
            print(f"{name:14s} {min(pb[name]):6.2f} s  ratio to weights: min {min(ratios):.3f} median {statistics.median(ratios):.3f}")
        return
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
