"""How fast the attention probe (Clark et al. 2019, sec. 6) trains on CPU, and how well it does.

Target (issue 15): training on a few thousand sentences takes minutes, not hours. The features (every
head's word-level attention in both directions for every dependent-candidate pair) are computed once with
the embedded MiniLM (6 x 12 heads) on the synthetic demo treebank (bertsecrets_cli/data/demo_treebank.py:
two-sentence template documents, NOT a real treebank, so the UAS only shows the machinery works); then
each probe is trained ``--repeats`` times and the min and median wall times reported (the machine is shared
and noisy: never compare single runs).

Usage: python benchmarks/clark_probe_speed.py [--train-docs 1000] [--test-docs 100] [--repeats 3] [--embedding-dims 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-docs", type=int, default=1000, help="two-sentence training documents")
    ap.add_argument("--test-docs", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--embedding-dims", type=int, default=8)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import numpy as np

    from bertsecrets_cli.analysis.probe import reduce_embeddings, stack, train_probe, uas
    from bertsecrets_cli.data.demo_treebank import write_demo_treebank
    from bertsecrets_cli.jobs.probe import ProbeOptions, _features
    from bertsecrets_cli.model.load import load_model

    tmp = Path(tempfile.mkdtemp())
    train_p = write_demo_treebank(tmp / "train.conllu", args.train_docs, seed=0)
    test_p = write_demo_treebank(tmp / "test.conllu", args.test_docs, seed=1)
    lm = load_model(None, device=args.device)
    opts = ProbeOptions(quiet=True)
    t0 = time.perf_counter()
    tr, tr_n, tr_e, _ = _features(lm, str(train_p), opts, None, True)
    te, te_n, te_e, _ = _features(lm, str(test_p), opts, None, True)
    t_feat = time.perf_counter() - t0
    train, test = stack(tr, tr_n), stack(te, te_n)
    mu, axes = reduce_embeddings(np.concatenate(tr_e), args.embedding_dims)
    red = lambda es: np.concatenate([(e - mu) @ axes for e in es]).astype(np.float32)  # noqa: E731
    train_w, test_w = stack(tr, tr_n, red(tr_e)), stack(te, te_n, red(te_e))
    print(f"sentences: train {len(tr_n)} ({len(train.gold)} words, {train.features.shape[0]} pairs x {train.features.shape[1]} features), "
          f"test {len(te_n)} ({len(test.gold)} words)")
    print(f"features (forward passes + word-level conversion): {t_feat:.1f} s")
    print(f"right-branching UAS {float(test.right.mean()):.3f}")
    for name, data, tdata, emb in (("attention-only", train, test, False), (f"attention + words ({args.embedding_dims} dims)", train_w, test_w, True)):
        times, score = [], float("nan")
        for _ in range(args.repeats):
            t = time.perf_counter()
            p = train_probe(data, embeddings=emb)
            times.append(time.perf_counter() - t)
            score = uas(p, tdata)
        print(f"{name}: train min {min(times):.2f} s, median {statistics.median(times):.2f} s over {args.repeats}; "
              f"{p.iterations} L-BFGS iterations; test UAS {score:.3f}")


if __name__ == "__main__":
    main()
