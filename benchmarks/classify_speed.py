"""classify's time against extract's on the same store, and its peak memory at two store sizes.

Target (issue 4): classifying a store takes at most a tenth of the time extract took to write it, and reads it in
a streaming way (peak memory does not grow with the store). Everything is measured in this one run, in-process,
on the embedded model, CPU, shipped demo data. Usage:

    python benchmarks/classify_speed.py [--n 300] [--task sst2|mrpc] [--cnn]

--cnn also times classify with a small CNN trained here on synthetic maps (the paper's classifier costs about
as much as a forward pass of a small encoder: it is not under the 1/10 target, and says so).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def extract(task: str, n: int, out: Path) -> float:
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

    t0 = time.perf_counter()
    run_extract(ExtractOptions(data=DataOptions(task=task, split="train", limit=n), device="cpu", quiet=True), out, command="benchmark")
    return time.perf_counter() - t0


def classify(store: Path, out: Path | None, classifier: str | None = None) -> tuple[float, object]:
    from bertsecrets_cli.jobs.classify import ClassifyOptions, run_classify

    if out is not None and out.exists():
        out.unlink()
    t0 = time.perf_counter()
    res = run_classify(store, out, ClassifyOptions(classifier=classifier, device="cpu", quiet=True), command="benchmark")
    return time.perf_counter() - t0, res


def peak_mib(store: Path) -> float:
    """Peak Python/numpy memory of classifying ``store`` (the one-off synthetic validation of the rules is cached first)."""
    from bertsecrets_cli.jobs.classifiers import rules_validation

    rules_validation()
    tracemalloc.start()
    classify(store, None)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="examples to extract (demo train split, at most 600)")
    ap.add_argument("--task", default="sst2", help="sst2 (one sentence) or mrpc (pairs)")
    ap.add_argument("--cnn", action="store_true", help="also time a CNN classifier trained here on synthetic maps")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        small, big = d / "small.h5", d / "big.h5"
        t_extract = extract(a.task, a.n, big)
        t_classify, res = classify(big, d / "pat.h5")
        extract(a.task, max(1, a.n // 3), small)
        m_small, m_big = peak_mib(small), peak_mib(big)
        size_big = big.stat().st_size / 2**20
        print(f"task {a.task}, {a.n} demo examples, embedded model, CPU ({os.cpu_count()} cores)")
        print(f"extract:  {t_extract:7.2f} s")
        print(f"classify: {t_classify:7.2f} s  ({res.classifier.label})")
        print(f"ratio classify/extract: {t_classify / t_extract:.3f}  (target <= 0.10)")
        print(f"classify peak traced memory: {m_small:.1f} MiB for {max(1, a.n // 3)} examples, {m_big:.1f} MiB for {a.n} "
              f"(store {size_big:.1f} MiB); ratio {m_big / m_small:.2f}")
        if a.cnn:
            import torch

            from bertsecrets_cli.jobs.train_classifier import TrainOptions, run_train

            clf = d / "clf.pt"
            run_train(TrainOptions(synthetic=200, epochs=3, device="cpu", quiet=True), clf, command="benchmark")
            t_cnn, _ = classify(big, d / "pat_cnn.h5", str(clf))
            print(f"classify with the CNN: {t_cnn:7.2f} s, ratio to extract {t_cnn / t_extract:.3f} (torch threads {torch.get_num_threads()})")


if __name__ == "__main__":
    main()
