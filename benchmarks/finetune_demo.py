"""Issue 3's acceptance run: fine-tune the embedded model on the three shipped demo tasks, time each run.

Target: each run (the whole `bertsecrets finetune` command, from start to finished folder) takes at
most 3 minutes on a 2-core CPU and the fine-tuned dev score is clearly above the majority-class and
untrained-head baselines (classification) / a positive correlation (stsb). Everything is measured in
this one run; the models stay in RUNS (default runs/) for the other subcommands (runs/sst2, ...).

Usage: python benchmarks/finetune_demo.py [--runs runs] [--preset demo] [--tasks sst2,mrpc,stsb] [--force]
Prints one TSV row per task: task, metric, majority, untrained head, fine-tuned, wall seconds, CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="runs", help="folder for the model folders")
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--tasks", default="sst2,mrpc,stsb")
    ap.add_argument("--force", action="store_true", help="replace existing model folders")
    ap.add_argument("extra", nargs="*", help="more finetune options, after --")
    args = ap.parse_args()
    print("task\tmetric\tmajority\tuntrained_head\tfine_tuned\twall_s\tcpu_s\tload_avg_1m_after")
    for task in args.tasks.split(","):
        out = os.path.join(args.runs, task)
        cmd = [sys.executable, "-m", "bertsecrets_cli", "finetune", "--task", task, "--preset", args.preset, "-o", out, "-f", "json", "-q", *args.extra]
        if args.force:
            cmd.append("--force")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode:
            print(f"{task}\tFAILED rc={proc.returncode}: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ''}", flush=True)
            continue
        rows = {r["model"]: r for r in json.loads(proc.stdout)}
        with open(os.path.join(out, "finetune.json")) as fh:
            metric = "pearson" if json.load(fh)["task"] == "stsb" else None
        metric = metric or next(k for k in next(iter(rows.values())) if k != "model")
        maj = next(r for name, r in rows.items() if name.startswith(("majority", "mean")))
        unt = next(r for name, r in rows.items() if "untrained" in name)
        ft = next(r for name, r in rows.items() if name.startswith("fine-tuned"))
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        fmt = lambda v: "nan" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"{task}\t{metric}\t{fmt(maj[metric])}\t{fmt(unt[metric])}\t{fmt(ft[metric])}\t{wall:.0f}\t{cpu:.0f}\t{os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
