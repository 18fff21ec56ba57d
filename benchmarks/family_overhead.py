"""extract's cost over a bare eager forward with attention output, per encoder family, on the same batches.

For every family of tests/conftest.py (``ALL_FAMILIES``), a MiniLM-sized random model (6 layers, 12 heads,
hidden 384, intermediate 1536; DeBERTa with both relative-position terms, ModernBERT with its local and
global layers) with a tokenizer of the family's own kind trained on the shipped demo texts
(``conftest.build_tokenizer``), then the two sides of ``extract_overhead.py`` over exactly the same
batches, timed in wall clock and CPU time (this process, all threads), one warm-up each, then interleaved
repeats in rotating order:

* extract: ``run_extract`` (tokenise, forward with capture, statistics, float16 copy, write, assemble),
  with the model loaded once beforehand;
* eager:   the family's own eager attention (``attn_implementation="eager"``, ``output_attentions=True``,
           maps dropped), the same weights: the physical limit of extract. Target extract <= 1.10x.

Prints per family min and median of the per-repeat ratios, wall and CPU (on a shared, loaded machine the CPU
ratio is the steadier one). Usage:
  python benchmarks/family_overhead.py [--n 160] [--repeats 5] [--threads 1] [--families bert,albert,...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from extract_overhead import bare_side, extract_side, make_data, preloaded  # noqa: E402


def family_model(folder: Path, family: str, tokenizer) -> Path:  # noqa: ANN001
    """A MiniLM-sized random model of ``family`` saved with ``tokenizer``."""
    import torch
    from transformers import AutoModel

    from conftest import tiny_config

    ids = {k: getattr(tokenizer, k) for k in ("bos_token_id", "eos_token_id", "cls_token_id", "sep_token_id") if getattr(tokenizer, k, None) is not None}
    size = dict(dim=384, n_layers=6, n_heads=12, hidden_dim=1536) if family == "distilbert" else \
        dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
    if family == "modernbert":  # ModernBERT-base's pattern: a global layer every third, local windows elsewhere
        size.update(local_attention=16, global_attn_every_n_layers=3)
    cfg = tiny_config(family, len(tokenizer), tokenizer.pad_token_id, sizes=size, **ids)
    torch.manual_seed(0)
    model = AutoModel.from_config(cfg)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=160)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--join", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--families", default="", help="comma-separated (default: every family of tests/conftest.py)")
    args = ap.parse_args()
    import torch
    from transformers import AutoModel

    from bertsecrets_cli.model.load import load_model
    from conftest import ALL_FAMILIES, FAMILY_TOKENIZERS, build_tokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    families = [f for f in args.families.split(",") if f] or list(ALL_FAMILIES)
    task = "sst2"
    tokenizers: dict = {}
    print(f"{args.n} examples (demo {task}, --join {args.join}), batch {args.batch_size}, max length {args.max_length}, {args.device}, "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}; {args.repeats} interleaved repeats; "
          "models: 6 layers x 12 heads, hidden 384, random weights")
    print(f"{'family':<12} {'tokenizer':<30} {'tokens':>6} {'eager s':>7} {'extract s':>9}  extract / eager+attn, min median: wall     cpu"
          "   (target <= 1.10)")
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        data, _ = make_data(task, None, args.n, folder, args.join)
        for family in families:
            kind = FAMILY_TOKENIZERS[family]
            if kind not in tokenizers:
                tokenizers[kind] = build_tokenizer(*kind, vocab_size=2000)
            path = family_model(folder / family, family, tokenizers[kind])
            lm = load_model(str(path), device=args.device)
            preloaded(lm)
            eager = AutoModel.from_pretrained(str(path), attn_implementation="eager").to(lm.device).eval()
            out = folder / f"{family}.h5"
            sides = {"extract": lambda: extract_side(lm, data, task, out, args),
                     "eager": lambda: bare_side(lm, eager, data, task, args, True)}
            names = list(sides)
            for k in names:
                sides[k]()
            wall: dict[str, list[float]] = {k: [] for k in names}
            cpu: dict[str, list[float]] = {k: [] for k in names}
            for rep in range(args.repeats):
                for k in names[rep % 2 :] + names[: rep % 2]:
                    t0, c0 = time.perf_counter(), time.process_time()
                    sides[k]()
                    wall[k].append(time.perf_counter() - t0)
                    cpu[k].append(time.process_time() - c0)
            from bertsecrets_cli.store import open_store

            with open_store(out) as st:
                tokens = int(st.lengths().sum())
            r = [a / b for a, b in zip(wall["extract"], wall["eager"])]
            c = [a / b for a, b in zip(cpu["extract"], cpu["eager"])]
            print(f"{family:<12} {'/'.join(kind):<30} {tokens:>6} {min(wall['eager']):>7.2f} {min(wall['extract']):>9.2f}  "
                  f"{'':<27}{min(r):.3f} {statistics.median(r):.3f}   {min(c):.3f} {statistics.median(c):.3f}", flush=True)


if __name__ == "__main__":
    main()
