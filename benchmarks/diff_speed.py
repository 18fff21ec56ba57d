"""diff's time on two 1000-example stores against extract's time for one, and diff's peak memory.

Target (issue 5): diff <= 1/10 of extract's time for one of the stores, with bounded memory. Both stores
are extracted in this run from the same 1000 demo sentences (the shipped sst2 demo set, repeated with
new ids): A with the embedded MiniLM, B with a copy of it whose query/key weights got seeded noise that
grows with depth (a stand-in for fine-tuning: same tokenizer, so tokens match, and attention changes most
in the last layers). Memory is compared between diffing all n pairs and n/4 of them (pairing by id picks the subset).
Usage: python benchmarks/diff_speed.py [--n 1000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def make_data(n: int, folder: Path, name: str = "bench.jsonl") -> Path:
    """n demo sentences, cycling through the shipped single-sentence demo sets with fresh ids (b0, b1, ...)."""
    from bertsecrets_cli.data.sources import load_dataset
    from bertsecrets_cli.data.tasks import get_task

    task = get_task("sst2")
    pool = load_dataset(task, None, "train").examples + load_dataset(task, None, "dev").examples
    path = folder / name
    with open(path, "w") as fh:
        for i in range(n):
            e = pool[i % len(pool)]
            fh.write(json.dumps({"id": f"b{i}", "sentence": e.text_a, "label": e.label}) + "\n")
    return path


def perturbed_model(folder: Path) -> Path:
    """The embedded model with noise on layer i's query/key weights, std 0.02 * i (layer 0 untouched)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from bertsecrets_cli.model.load import embedded_model_dir

    src = embedded_model_dir()
    model, tok = AutoModel.from_pretrained(src), AutoTokenizer.from_pretrained(src)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for i, layer in enumerate(model.encoder.layer):
            for lin in (layer.attention.self.query, layer.attention.self.key):
                lin.weight.add_(torch.randn(lin.weight.shape, generator=g) * 0.02 * i)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def extract(data: Path, out: Path, model: str | None) -> float:
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    t0 = time.perf_counter()
    run_extract(ExtractOptions(model=model, data=DataOptions(task="sst2", data=str(data)), device="cpu", quiet=True), out, command="benchmark")
    return time.perf_counter() - t0


def diff(a: Path, b: Path, out: Path) -> tuple[float, object]:
    """(seconds, result) of diff A B -o out."""
    from bertsecrets_cli.jobs.diff import DiffOptions, run_diff

    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    res = run_diff(a, b, out, DiffOptions(quiet=True), command="benchmark")
    return time.perf_counter() - t0, res


def diff_peak_mib(a: Path, b: Path, out: Path) -> float:
    """Peak memory (MiB) that numpy and Python allocate during one diff (tracemalloc; slows it, so not timed)."""
    tracemalloc.start()
    diff(a, b, out)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        data = make_data(a.n, folder)
        ft = perturbed_model(folder / "perturbed")
        extract(data, folder / "warm.h5", None)  # warm-up: first-call costs must not count
        t_a = extract(data, folder / "a.h5", None)
        t_b = extract(data, folder / "b.h5", str(ft))
        diff(folder / "a.h5", folder / "b.h5", folder / "d.h5")  # warm-up: imports, page cache
        runs = [diff(folder / "a.h5", folder / "b.h5", folder / "d.h5") for _ in range(2)]
        t_diff = min(r[0] for r in runs)
        res = runs[0][1]
        # memory: 1000 pairs vs a quarter of them (A against a B of its first n/4 examples); a bounded stream
        # needs the same peak for both, whatever the number of examples
        quarter = make_data(a.n // 4, folder, "quarter.jsonl")
        extract(quarter, folder / "b4.h5", str(ft))
        peak = diff_peak_mib(folder / "a.h5", folder / "b.h5", folder / "d.h5")
        peak4 = diff_peak_mib(folder / "a.h5", folder / "b4.h5", folder / "d4.h5")
        size_mib = (folder / "a.h5").stat().st_size / 2**20
    from bertsecrets_cli.analysis.similarity import layer_means

    print(f"examples {a.n}, embedded MiniLM (6x12) vs a perturbed copy, CPU, torch threads {a.threads}")
    print(f"extract A: {t_a:.2f} s; extract B: {t_b:.2f} s; diff A B -o d.h5: {t_diff:.3f} s (best of 2)")
    print(f"ratio {t_diff / t_a:.3f}  (diff / extract of A; target <= 0.10)")
    print(f"peak memory allocated during diff (tracemalloc): {peak:.1f} MiB for {a.n} pairs (stores of {size_mib:.0f} MiB each), "
          f"{peak4:.1f} MiB for {a.n // 4} pairs; ratio {peak / peak4:.2f} (bounded: ~1)")
    print("per-layer mean cosine: " + " ".join(f"L{i + 1} {v:.3f}" for i, v in enumerate(layer_means(res.cosine))))


if __name__ == "__main__":
    main()
