"""``classify run -o``, resumable: a store larger than one part is labelled part by part (the job's own shards,
kept next to the output), then joined by the patterns merge; see jobs/resumable.py."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from bertsecrets_cli.errors import InputError
from bertsecrets_cli.jobs.classify import ClassifyOptions, ClassifyResult, run_classify
from bertsecrets_cli.jobs.classify_merge import combine_patterns
from bertsecrets_cli.jobs.resumable import leftover_parts, run_in_parts


def run_classify_resumable(store_path: str | Path, out: str | Path | None, opts: ClassifyOptions, *, command: str | None = None,
                           source: str | None = None) -> ClassifyResult:
    """:func:`run_classify`, in resumable parts when it writes ``out`` and the store holds more than one part."""
    if opts.part_size < 0:
        raise InputError(f"--part-size {opts.part_size}: must be 0 (one pass) or more")
    if out is not None and not opts.shard and opts.part_size and not opts.spacy:  # --spacy: one pass (its sums are not merged)
        parted = _in_parts(store_path, out, opts, command=command, source=source)
        if parted is not None:
            return parted
    return run_classify(store_path, out, opts, command=command, source=source)


def _in_parts(store_path: str | Path, out: str | Path, opts: ClassifyOptions, *, command: str | None,
             source: str | None) -> ClassifyResult | None:
    """A store larger than one part is labelled part by part (resumable), then joined as shards are; None: one pass."""
    from bertsecrets_cli.jobs.shard import inherited_shard
    from bertsecrets_cli.store import open_store
    from bertsecrets_cli.store.writer import check_output_path

    leftover_parts(out, resume=opts.resume, force=opts.force)
    with open_store(store_path, kind="attention", locking=opts.locking) as st:
        n, prov = st.n_examples, st.provenance()
    if n <= opts.part_size or inherited_shard(prov):  # an extract shard is itself a part of a job
        return None
    check_output_path(out, force=opts.force or opts.resume)
    key = {"input": str(source or store_path), "input_job": prov.get("job_fingerprint", ""), "n": n,
           "options": {k: v for k, v in asdict(opts).items() if k not in ("force", "quiet", "resume", "locking", "block_values")}}
    part_opts = replace(opts, part_size=0, force=True, resume=False)
    return run_in_parts(out, n_items=n, part_size=opts.part_size, key=key, resume=opts.resume, what=f"classify of {n} examples",
                        run_part=lambda shard, path: run_classify(store_path, path, replace(part_opts, shard=shard), command=command, source=source),
                        combine=lambda paths: combine_patterns(paths, out, force=opts.force or opts.resume, locking=opts.locking, command=command))
