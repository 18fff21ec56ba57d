"""What validating attention as it is read costs classify and diff (issue 14: at most 5% of the command's time).

Two measurements on one store of n demo sentences (embedded MiniLM, 6x12):
- end to end: the command's CPU time with validation against --no-validate, alternating, R rounds each; the
  machine is noisy, so the min and the median of the ratios are printed, never one number;
- direct: the CPU time spent inside the checks themselves during the command (store.validation's functions,
  timed where the reader calls them: one bit-pattern maximum per block, one row-sum product per example; diff
  reads two stores), as a share of the command's time without validation.
Usage: python benchmarks/validation_overhead.py [--n 300] [--rounds 8] [--threads 2] [--task sst2|mrpc]
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
sys.path.insert(0, str(Path(__file__).parent))


def timed(fn) -> float:  # noqa: ANN001 - a no-argument callable
    """CPU seconds of this process: on a shared machine, wall time mostly measures the neighbours."""
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def with_check_seconds(fn) -> tuple[float, float]:  # noqa: ANN001 - a no-argument callable
    """(CPU seconds of ``fn`` with validation, CPU seconds spent inside store.validation's checks during it)."""
    from bertsecrets_cli.store import validation

    spent = [0.0]
    real = {name: getattr(validation, name) for name in ("raw_values_ok", "rows_problem", "attention_problem")}

    def timer(check):  # noqa: ANN001, ANN202
        def wrapped(*args):  # noqa: ANN002, ANN202
            t0 = time.process_time()
            try:
                return check(*args)
            finally:
                spent[0] += time.process_time() - t0

        return wrapped

    try:
        for name, check in real.items():
            setattr(validation, name, timer(check))
        validation.set_validation(None)
        total = timed(fn)
    finally:
        for name, check in real.items():
            setattr(validation, name, check)
    return total, spent[0]


def command_cpu_seconds(args: list[str]) -> float:
    """CPU seconds of a real ``bertsecrets ARGS`` process (start-up, imports and writing included)."""
    import resource
    import subprocess

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "bertsecrets_cli", *args], check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--task", default="sst2", help="sst2: single demo sentences (~16 tokens); mrpc: the demo sentence pairs (~50 tokens, at most 200)")
    a = ap.parse_args()
    import torch

    from diff_speed import make_data

    from bertsecrets_cli.jobs.classify import ClassifyOptions, run_classify
    from bertsecrets_cli.jobs.diff import DiffOptions, run_diff
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract
    from bertsecrets_cli.store.validation import set_validation

    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        source = DataOptions(task="sst2", data=str(make_data(a.n, folder))) if a.task == "sst2" else DataOptions(task=a.task, limit=a.n)
        store = folder / "a.h5"
        run_extract(ExtractOptions(data=source, device="cpu", quiet=True), store, command="benchmark")
        commands = {
            "classify": lambda: run_classify(store, None, ClassifyOptions(quiet=True, device="cpu")),
            "diff": lambda: run_diff(store, store, None, DiffOptions(quiet=True)),
        }
        from bertsecrets_cli.store import open_store

        with open_store(store) as st:
            n, mean_len = st.n_examples, float(st.lengths().mean())
        cli_args = {"classify": ["classify", str(store), "-q", "--device", "cpu"], "diff": ["diff", str(store), str(store), "-q"]}
        print(f"{a.task}: {n} examples of {mean_len:.0f} tokens on average, embedded MiniLM (6x12), store {store.stat().st_size / 2**20:.0f} MiB, CPU, torch threads {a.threads}, {a.rounds} rounds")
        for name, fn in commands.items():
            fn()  # warm-up: imports, page cache
            on, off = [], []
            for r in range(a.rounds):  # alternating which goes first: the first of a pair tends to pay for the other's garbage
                for validate in ((None, False) if r % 2 == 0 else (False, None)):
                    set_validation(validate)
                    (on if validate is None else off).append(timed(fn))
            set_validation(None)
            direct = min(with_check_seconds(fn)[1] for _ in range(3))
            ratios = [x / y - 1 for x, y in zip(on, off)]
            whole = min(command_cpu_seconds([*cli_args[name], "--no-validate"]) for _ in range(3))
            print(f"{name} (job function): {min(off):.3f} CPU s without validation, {min(on):.3f} s with (best of {a.rounds}); "
                  f"overhead min {min(ratios):+.1%}, median {statistics.median(ratios):+.1%}; "
                  f"the check itself: {direct:.3f} s = {direct / min(off):.1%} of the job")
            print(f"{name} (whole command, bertsecrets {' '.join(cli_args[name][:1])} ... --no-validate: {whole:.2f} CPU s, best of 3): "
                  f"the check is {direct / whole:.2%} of it (target <= 5%)")


if __name__ == "__main__":
    main()
