"""Sharded extraction and merging: the merged store equals one unsharded run; bad shard sets are refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bertsecrets_cli.errors import InputError, StoreError
from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract
from bertsecrets_cli.jobs.shard import Shard, resolve_shard
from bertsecrets_cli.jobs.check import check_store
from bertsecrets_cli.store import open_store
from bertsecrets_cli.store.merge import merge_attention_stores

N = 14


def _extract(out: Path, shard: str | None = None, limit: int = N, task: str = "sst2") -> Path:
    run_extract(ExtractOptions(data=DataOptions(task=task, limit=limit), device="cpu", quiet=True, shard=shard, batch_size=4), out, command="t")
    return out


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> tuple[Path, list[Path], Path]:
    d = tmp_path_factory.mktemp("shards")
    parts = [_extract(d / f"s{i}.h5", f"{i}/3") for i in range(3)]
    return d, parts, _extract(d / "full.h5")


def test_shard_ranges_are_contiguous_and_cover_everything() -> None:
    for n in (1, 7, 10, 11):
        for count in (1, 2, 3, 4):
            ranges = [Shard(i, count, "--shard").range(n) for i in range(count)]
            assert ranges[0][0] == 0 and ranges[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


def test_rank_comes_from_torchrun_then_slurm(monkeypatch) -> None:
    for k in ("RANK", "WORLD_SIZE", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT"):
        monkeypatch.delenv(k, raising=False)
    assert resolve_shard(None) is None
    assert resolve_shard("1/4") == Shard(1, 4, "--shard")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "12")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "10")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    assert resolve_shard(None) == Shard(2, 4, "slurm")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert resolve_shard(None) == Shard(3, 8, "torchrun")
    assert resolve_shard("0/2").origin == "--shard"  # explicit wins
    for bad in ("3/3", "a/b", "1/0", "-1/2"):
        with pytest.raises(InputError):
            resolve_shard(bad)


@pytest.mark.parametrize("copy", [False, True])
def test_merged_shards_equal_one_run(shards, tmp_path: Path, copy: bool) -> None:
    d, parts, full = shards
    out = d / f"merged-{copy}.h5"
    rep = merge_attention_stores([parts[2], parts[0], parts[1]], out, copy=copy)
    assert rep.n_examples == N and rep.virtual is not copy
    check_store(out)
    with open_store(full) as a, open_store(out) as b:
        assert a.example_ids() == b.example_ids()
        assert np.array_equal(a.array("tokens/ids"), b.array("tokens/ids"))
        for i in range(N):
            # other batch compositions change float rounding only (a float16 step at most)
            np.testing.assert_allclose(a.attention(i), b.attention(i), atol=1e-3)
        np.testing.assert_allclose(a.heads()["stat_cls"].values, b.heads()["stat_cls"].values, rtol=1e-4)
    out.unlink()


def test_virtual_merge_survives_a_move_and_check_finds_a_missing_shard(shards, tmp_path: Path) -> None:
    d, parts, _ = shards
    moved = tmp_path / "moved"
    moved.mkdir()
    for p in parts:
        shutil.copy(p, moved / p.name)
    merge_attention_stores([moved / p.name for p in parts], moved / "m.h5")
    elsewhere = tmp_path / "elsewhere"
    moved.rename(elsewhere)
    check_store(elsewhere / "m.h5")
    (elsewhere / "s1.h5").unlink()
    with pytest.raises(StoreError, match="s1.h5 is missing"):
        check_store(elsewhere / "m.h5")
    # every reader names the cause, not "this is not attention"
    from typer.testing import CliRunner

    from bertsecrets_cli.cli.app import app

    res = CliRunner().invoke(app, ["classify", str(elsewhere / "m.h5"), "-o", str(tmp_path / "pat.h5")])
    assert res.exit_code == 4 and "a merged store with a missing shard" in res.stderr and "s1.h5 is missing" in res.stderr, res.stderr
    assert "not attention" not in res.stderr


def test_bad_shard_sets_are_refused(shards, tmp_path: Path) -> None:
    d, parts, full = shards
    with pytest.raises(StoreError, match="missing"):
        merge_attention_stores(parts[:2], tmp_path / "a.h5")
    with pytest.raises(StoreError, match="overlap"):
        merge_attention_stores([parts[0], parts[0], parts[1]], tmp_path / "b.h5")
    with pytest.raises(StoreError, match="some inputs are shards"):
        merge_attention_stores([parts[0], full], tmp_path / "c.h5")
    other = _extract(tmp_path / "other.h5", "1/3", task="mrpc")
    with pytest.raises(StoreError, match="differs"):
        merge_attention_stores([parts[0], other, parts[2]], tmp_path / "d.h5")
    assert not list(tmp_path.glob("?.h5"))
