"""Store bytes per example and extract time at 512 tokens for ``extract --maps full | topk:8 | topk:32 | none``.

Model: random weights of bert-base's shape (hidden 768, 12 heads of 64, feed-forward 3072, the embedded
tokenizer's 30,522-piece vocabulary), with ``--layers`` layers (default 2, so that it runs on a laptop CPU in
about a minute). Every stored quantity is per layer except the tokens and texts (under 0.1% of a full store), so
bytes per example are counted from the datasets themselves: the per-layer ones (attention/, stats/: maps,
top-k rows, statistics, classifier features) scaled to bert-base's 12 layers (x 12 / layers), the rest (tokens,
texts, offsets) as they are; the logical size (values x bytes per value) is what a store of many examples
converges to, while the file size of a few examples is dominated by its partly filled 128 kB chunks (printed
too, unscaled). Times are printed as measured (forward and capture both grow linearly with the layers). Inputs: ``--n`` examples of exactly
512 pieces each (consecutive demo sentences joined until they pass 512 pieces, then truncated), so every
example costs the maximum. Float16 values (extract's default). Disk for 10,000 and 1,000,000 examples is the
scaled bytes per example times N (the fixed part of a store, model description and statistics names, is
counted once in the measured size and is a few kB).

Usage: python benchmarks/maps_modes.py [--n 6] [--layers 2] [--batch-size 2] [--modes full,topk:8,topk:32,none]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
LENGTH = 512


def build_model(folder: Path, layers: int) -> Path:
    """A bert-base-shaped model with random weights and the embedded model's (bert-base-uncased) tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from bertsecrets_cli.model.load import embedded_model_dir

    tok = AutoTokenizer.from_pretrained(embedded_model_dir())
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=768, num_hidden_layers=layers, num_attention_heads=12,
                     intermediate_size=3072, max_position_embeddings=LENGTH)
    torch.manual_seed(0)
    BertModel(cfg).eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def long_examples(path: Path, n: int) -> Path:
    """n JSONL sst2 examples, each consecutive demo sentences joined to well over 512 pieces."""
    from bertsecrets_cli.data.sources import load_dataset
    from bertsecrets_cli.data.tasks import get_task

    spec = get_task("sst2")
    pool = [e.text_a for e in load_dataset(spec, None, "train").examples + load_dataset(spec, None, "dev").examples]
    with open(path, "w") as fh:
        for i in range(n):
            words: list[str] = []
            j = i * 7
            while len(words) < 2 * LENGTH:  # well past 512 pieces: truncation keeps exactly 512
                words += pool[j % len(pool)].split()
                j += 1
            fh.write(json.dumps({"id": f"long{i}", "sentence": " ".join(words), "label": 0}) + "\n")
    return path


def dataset_bytes(h5: object) -> tuple[int, int]:
    """(bytes of the per-layer datasets, bytes of the others): values x bytes per value (strings: their stored size)."""
    import h5py

    sizes = [0, 0]

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset) and obj.shape and obj.shape[0] > 0 and not name.startswith("heads/"):
            n = obj.id.get_storage_size() if obj.dtype.kind == "O" else obj.size * obj.dtype.itemsize
            sizes[0 if name.startswith(("attention/", "stats/")) else 1] += n

    h5.visititems(visit)  # type: ignore[attr-defined]
    return sizes[0], sizes[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--modes", default="full,topk:8,topk:32,none")
    args = ap.parse_args()
    import torch

    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract
    from bertsecrets_cli.store import open_store

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    scale = 12 / args.layers
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        model = build_model(d / "model", args.layers)
        data = long_examples(d / "long.jsonl", args.n)
        print(f"random bert-base-shaped model, {args.layers} of 12 layers (bytes scaled x{scale:g}), {args.n} examples of {LENGTH} pieces, "
              f"float16, batch {args.batch_size}, {torch.get_num_threads()} threads, CPU")
        print(f"{'maps':8} {'bytes/example':>14} {'x12 layers':>12} {'10,000 ex':>10} {'1,000,000 ex':>13} {'s/example':>10}")
        for mode in args.modes.split(","):
            out = d / f"{mode.replace(':', '')}.h5"
            opts = ExtractOptions(model=str(model), data=DataOptions(task="sst2", data=str(data)), max_length=LENGTH,
                                  batch_size=args.batch_size, device="cpu", quiet=True, force=True, maps=mode)
            t0 = time.perf_counter()
            run_extract(opts, out, command="benchmark")
            secs = time.perf_counter() - t0
            with open_store(out) as st:
                assert st.n_examples == args.n and int(st.lengths().min()) == LENGTH, "every example must be 512 pieces"
                per_layer, other = dataset_bytes(st.h5)
            per_ex = (per_layer + other) / args.n
            full = (per_layer * scale + other) / args.n
            print(f"{mode:8} {per_ex:14,.0f} {full:12,.0f} {_size(full * 1e4):>10} {_size(full * 1e6):>13} {secs / args.n:10.2f}"
                  f"   (file {out.stat().st_size / args.n:,.0f} B/example at n={args.n})")


def _size(b: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if b < 1000:
            return f"{b:.3g} {unit}"
        b /= 1000
    return f"{b:.3g} EB"


if __name__ == "__main__":
    main()
