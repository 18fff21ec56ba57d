"""File size and load time of ``bertsecrets view`` pages of 8, 64 and 512 examples, in headless Chromium.

Target (issue 16): a 64-example view of the embedded model (MiniLM, 6 x 12 heads) stays under 10 MB and opens
in under 2 s. The examples are the shipped demo sentences (sst2 demo train split: 512 are needed), extracted
once with the embedded model on the CPU. Load time is the page's own ``timings.ready_ms``: milliseconds from
navigation start until the data is parsed, the first example decoded and every panel drawn; each page is
opened ``--repeats`` times in a fresh tab and the min and median are printed (the machine is noisy).

Usage: python benchmarks/view_size.py [--sizes 8,64,512] [--repeats 5] [--encoding float16] [--store pre.h5 | --long]
       [--screenshot docs/img/view.png --patterns P.h5 --diff D.h5 --ablation A.h5]
Prints one row per size: examples, bytes, MB, write seconds, load ms (min, median).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="8,64,512", help="comma-separated example counts")
    ap.add_argument("--repeats", type=int, default=5, help="page opens per size")
    ap.add_argument("--encoding", default="float16", choices=("float16", "uint8"))
    ap.add_argument("--store", default=None, help="an attention store to view (default: extract the demo sentences once)")
    ap.add_argument("--long", action="store_true", help="instead: one synthetic review of 512 tokens (--max-length 512), viewed alone")
    ap.add_argument("--chromium", default=os.environ.get("BERTSECRETS_CHROMIUM", "/usr/bin/chromium"))
    ap.add_argument("--screenshot", default=None, help="also save a screenshot of the first size's page here (PNG)")
    ap.add_argument("--patterns", default=None)
    ap.add_argument("--diff", default=None)
    ap.add_argument("--ablation", default=None)
    ap.add_argument("--hash", default="", help="selection for the screenshot, e.g. '#layer=3&head=5'")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    from playwright.sync_api import sync_playwright

    from bertsecrets_cli.jobs.view import ViewOptions, run_view

    work = Path(tempfile.mkdtemp(prefix="bertsecrets-view-bench-"))
    try:
        store = Path(args.store) if args.store else work / "demo.h5"
        if args.long:
            import json

            from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

            text = " ".join(f"the reviewer number {i} found the film long but rather moving" for i in range(80))
            (work / "long.jsonl").write_text(json.dumps({"id": "long-0", "text_a": text, "label": 1}) + "\n")
            run_extract(ExtractOptions(data=DataOptions(task="sst2", data=str(work / "long.jsonl")), max_length=512, device="cpu", quiet=True), store, command="bench")
            sizes = [1]
        elif not args.store:
            from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract

            t0 = time.perf_counter()
            run_extract(ExtractOptions(data=DataOptions(task="sst2", split="train", limit=max(sizes)), device="cpu", quiet=True), store, command="bench")
            print(f"extracted {max(sizes)} demo examples in {time.perf_counter() - t0:.1f} s")
        print(f"{'examples':>8} {'bytes':>12} {'MB':>7} {'write s':>8} {'load ms min':>12} {'load ms median':>15}")
        with sync_playwright() as p:
            profile = work / "profile"
            ctx = p.chromium.launch_persistent_context(str(profile), executable_path=args.chromium, headless=True, args=FLAGS,
                                                       viewport={"width": 1400, "height": 1000}, device_scale_factor=1, offline=True)
            for n in sizes:
                out = work / f"view-{n}.html"
                t0 = time.perf_counter()
                res = run_view(store, out, ViewOptions(limit=n, encoding=args.encoding, force=True, patterns=args.patterns, diff=args.diff, ablation=args.ablation))
                write_s = time.perf_counter() - t0
                loads = []
                for _ in range(args.repeats):
                    page = ctx.new_page()
                    errors: list[str] = []
                    page.on("pageerror", lambda e: errors.append(str(e)))
                    page.goto(out.as_uri() + args.hash)
                    page.wait_for_function("window.bertsecretsView && window.bertsecretsView.ready", timeout=120_000)
                    loads.append(page.evaluate("window.bertsecretsView.timings.ready_ms"))
                    if args.screenshot and n == sizes[0] and len(loads) == 1:
                        page.screenshot(path=args.screenshot, full_page=True)
                    page.close()
                    assert not errors, errors
                print(f"{res.n_examples:>8} {res.size_bytes:>12,} {res.size_bytes / 1e6:>7.2f} {write_s:>8.2f} {min(loads):>12.0f} {statistics.median(loads):>15.0f}")
            ctx.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
