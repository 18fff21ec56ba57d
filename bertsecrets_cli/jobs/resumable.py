"""Resumable runs of a shardable job: the work is done as contiguous parts (the job's own ``--shard k/n``), each
written atomically next to the output, then joined by the job's own merge. Merged shards equal one unsharded run
(tested for every kind), so the parts change nothing in the result; a stopped run keeps its finished parts, and
``--resume`` with the same options continues from them.

Used by classify and diff; extract keeps its own part files (jobs/extract.py), ablate its checkpoint.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bertsecrets_cli import outputs
from bertsecrets_cli.errors import InputError, Interrupted, OutputError
from bertsecrets_cli.render.console import info

T = TypeVar("T")


def parts_dir(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(f".{out.name}.parts")


def leftover_parts(out: str | Path, *, resume: bool, force: bool) -> None:
    """Refuse to start over the finished parts of an interrupted run unless asked (exit 6), like extract and ablate."""
    d = parts_dir(out)
    if d.exists() and not resume:
        if force:
            shutil.rmtree(d)
            return
        raise OutputError(f"{out}: an interrupted run left its finished parts in {d.name}/; pass --resume to continue it "
                          "(same options), or --force to start over")


def run_in_parts(out: str | Path, *, n_items: int, part_size: int, key: dict[str, Any], resume: bool, what: str,
                 run_part: Callable[[str, Path], None], combine: Callable[[list[str]], T]) -> T:
    """Run ``run_part(shard, path)`` for each of ceil(n_items / part_size) parts not finished yet, then
    ``combine(paths)``; the parts folder goes once the output exists."""
    d = parts_dir(out)
    n = max(1, math.ceil(n_items / part_size))
    keyfile = d / "job.json"
    want = json.dumps({**key, "parts": n}, sort_keys=True, default=str)
    if d.exists():
        if not resume:
            raise OutputError(f"{out}: an interrupted run left its finished parts in {d.name}/; pass --resume to continue it")
        if not keyfile.exists() or keyfile.read_text() != want:
            raise InputError(f"{out}: --resume: the finished parts in {d.name}/ were made with other inputs or options; "
                             "rerun with those, or with --force to start over")
    else:
        outputs.private_folder(d, parents=True)
        outputs.write_text(keyfile, want, mode="replace")
    paths = [d / f"part-{k:05d}.h5" for k in range(n)]
    done = sum(p.exists() for p in paths)
    if done:
        info(f"resuming: {done} of {n} parts of {what} already done")
    for k, p in enumerate(paths):
        if p.exists():  # written atomically: an existing part is a complete one
            continue
        try:
            run_part(f"{k}/{n}", p)
        except Interrupted as e:
            kept = sum(q.exists() for q in paths)
            raise Interrupted(f"{out}: {e.args[0].split(': ', 1)[-1].split(';')[0]}; {kept} of {n} parts of {what} are kept; "
                              "rerun with --resume to finish") from None
    result = combine([str(p) for p in paths])
    shutil.rmtree(d, ignore_errors=True)
    return result
