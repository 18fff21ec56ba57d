"""Which slice of the work this process does: ``--shard i/n`` or the launcher's environment.

Ranks come from, in order: an explicit ``--shard i/n`` (0-based i), torchrun/accelerate (``RANK``,
``WORLD_SIZE``), Slurm job arrays (``SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN`` of
``SLURM_ARRAY_TASK_COUNT``). Shards are contiguous ranges, so merged shards keep the original order.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bertsecrets_cli.errors import InputError


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based
    count: int
    origin: str  # "--shard", "torchrun", "slurm"

    def range(self, n: int) -> tuple[int, int]:
        """[start, end) of n items, as datasets.Dataset.shard(contiguous=True) splits them."""
        div, mod = divmod(n, self.count)
        start = self.index * div + min(self.index, mod)
        return start, start + div + (1 if self.index < mod else 0)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def _int_env(name: str, env: Mapping[str, str] | None = None) -> int | None:
    v = (os.environ if env is None else env).get(name)
    if v is None or v.strip() == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise InputError(f"environment variable {name}={v!r} is not an integer") from None


def shard_from_env(env: Mapping[str, str] | None = None) -> Shard | None:
    """The launcher's rank: torchrun/accelerate first, then a Slurm array; None outside both."""
    rank, world = _int_env("RANK", env), _int_env("WORLD_SIZE", env)
    if rank is not None and world is not None and world > 1:
        if not 0 <= rank < world:
            raise InputError(f"RANK={rank} is outside WORLD_SIZE={world}")
        return Shard(rank, world, "torchrun")
    task, count = _int_env("SLURM_ARRAY_TASK_ID", env), _int_env("SLURM_ARRAY_TASK_COUNT", env)
    if task is not None and count is not None and count > 1:
        low = _int_env("SLURM_ARRAY_TASK_MIN", env) or 0
        i = task - low
        if not 0 <= i < count:
            raise InputError(f"SLURM_ARRAY_TASK_ID={task} is outside the array (min {low}, count {count}); use a contiguous array like --array=0-{count - 1}")
        return Shard(i, count, "slurm")
    return None


def parse_shard(spec: str) -> Shard:
    """'i/n' (0-based) -> Shard."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec)
    if not m:
        raise InputError(f"--shard {spec!r}: write it as i/n with 0 <= i < n, e.g. 0/4")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= i < n:
        raise InputError(f"--shard {spec}: need 0 <= i < n (shards are numbered from 0)")
    return Shard(i, n, "--shard")


def resolve_shard(spec: str | None, env: Mapping[str, str] | None = None) -> Shard | None:
    """The shard of this process: ``--shard i/n``; ``auto`` or no option: the launcher's rank, if any."""
    if spec and spec.strip().lower() != "auto":
        return parse_shard(spec)
    found = shard_from_env(env)
    if found is None and spec:
        raise InputError("--shard auto: found neither RANK/WORLD_SIZE nor SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT in the environment")
    return found


# ---------------------------------------------------------------------------------------------
# what the analysis commands (classify, diff, framenet) record so `merge` can join their shards

SHARD_FIELDS = ("shard_index", "shard_count", "shard_start", "shard_end")


def fingerprint(obj: Any) -> str:
    """sha256 of a JSON-able description of a job: shards of one job share it, other jobs do not."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def shard_slice(shard: Shard | None, n_total: int, what: str = "examples") -> tuple[int, int]:
    """[start, end) of this shard's items; every item without a shard; an empty shard is an error."""
    if shard is None:
        return 0, n_total
    s0, s1 = shard.range(n_total)
    if s0 == s1:
        raise InputError(f"shard {shard} has no {what} ({n_total} {what} for {shard.count} shards); use fewer shards")
    return s0, s1


def shard_provenance(shard: Shard, start: int, end: int, n_total: int) -> dict[str, Any]:
    """The provenance fields by which `merge` orders shards and finds gaps and overlaps."""
    return {"shard_index": shard.index, "shard_count": shard.count, "shard_start": start, "shard_end": end,
            "shard_origin": shard.origin, "n_total": n_total}


def input_shard(shard: Shard | None, provenance: Mapping[str, Any], source: str, command: str, kind: str) -> dict[str, Any]:
    """The shard fields of a command's output over one store: the input's own, when it is an extract shard (then
    ``shard`` must be None: splitting a shard again would give stores merge cannot place), else {} (the caller
    adds ``shard_provenance`` of its slice)."""
    attrs = inherited_shard(provenance)
    if shard is not None and attrs:
        raise InputError(f"{source}: is already shard {attrs['shard_index']}/{attrs['shard_count']} of an extract job; "
                         f"{command} it without --shard (its {kind} store merges like a shard), or merge the extract shards first")
    return attrs


def store_slice(shard: Shard | None, provenance: Mapping[str, Any], n_total: int, source: str, command: str, kind: str) -> tuple[int, int, dict[str, Any]]:
    """[start, end) of a store's examples this run covers, and the output's shard fields (``input_shard``, or this
    slice's own when ``shard`` splits the store)."""
    attrs = input_shard(shard, provenance, source, command, kind)
    s0, s1 = shard_slice(shard, n_total)
    if shard is not None:
        from bertsecrets_cli.render.console import info

        attrs = shard_provenance(shard, s0, s1, n_total)
        info(f"shard {shard} ({shard.origin}): examples {s0}..{s1 - 1} of {n_total}")
    return s0, s1, attrs


def inherited_shard(provenance: Mapping[str, Any]) -> dict[str, Any]:
    """The shard fields of an input store that is itself a shard (e.g. classify run on one extract shard)."""
    if "shard_count" not in provenance:
        return {}
    out = {k: int(provenance[k]) for k in SHARD_FIELDS}
    out["shard_origin"] = "input"
    if "n_total" in provenance:
        out["n_total"] = int(provenance["n_total"])
    return out


def input_identity(store: Any) -> str:
    """What names an input store's content in a job fingerprint: its own job fingerprint (extract and the
    stores made from it record one; shards of one job share it), else its model and example ids."""
    prov = store.provenance()
    return str(prov.get("job_fingerprint") or fingerprint([prov.get("model_fingerprint", ""), store.example_ids()]))
