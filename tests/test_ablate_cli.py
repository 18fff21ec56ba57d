"""``bertsecrets ablate`` end to end: store contents, tables, errors, shards that combine into one store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app

from helpers import covers, strengthen

runner = CliRunner()


@pytest.fixture(scope="module")
def model_dir(tiny_model_factory, tmp_path_factory) -> Path:
    """A tiny BERT classifier with large random weights, so disabling heads changes predictions."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    src = tiny_model_factory("bert", classifier=True)
    model = AutoModelForSequenceClassification.from_pretrained(src)
    strengthen(model)
    out = tmp_path_factory.mktemp("strong-bert")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return out


def _run(*args: str):
    return runner.invoke(app, ["ablate", "--device", "cpu", "-q", *args])


@pytest.fixture(scope="module")
def full(model_dir, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("abl") / "abl.h5"
    r = _run("-m", str(model_dir), "-n", "24", "--bootstrap", "200", "--importance", "-o", str(out), "--format", "json", "--table", "all")
    assert r.exit_code == 0, r.output
    return out, json.loads(r.stdout)


def test_default_run_writes_every_head_and_layer_with_intervals(full):
    from bertsecrets_cli.jobs.ablate import read_ablation
    from bertsecrets_cli.store.reader import open_store

    path, tables = full
    with open_store(path, kind="ablation") as st:
        heads = st.heads()
        assert {"ablation_delta", "ablation_ci_low", "ablation_ci_high", "ablation_score", "importance"} <= set(heads)
        assert heads["ablation_delta"].values.shape == (2, 4)
        assert st.array("layers/ablation_delta").shape == (2,)
    r = read_ablation(path)
    assert r.names[:9] == ["L1H1", "L1H2", "L1H3", "L1H4", "L2H1", "L2H2", "L2H3", "L2H4", "L1"] and r.names[-1] == "L2"
    np.testing.assert_allclose(r.delta[:, 0], r.metrics[:, 0] - r.base_metrics[0])
    assert (r.ci_low[:, 0] <= r.delta[:, 0] + 1e-12).all() and (r.delta[:, 0] <= r.ci_high[:, 0] + 1e-12).all()
    assert np.abs(r.delta[:, 0]).max() > 0, "the strengthened model must react to ablation"
    assert heads["ablation_delta"].values[1, 2] == pytest.approx(r.delta[r.names.index("L2H3"), 0])
    np.testing.assert_allclose(np.sqrt((heads["importance"].values ** 2).sum(1)), 1.0)
    assert r.predictions.shape == (10, 24)
    # tables: baseline, helps, hurts, layers, importance x2
    assert "baseline" in tables and tables["baseline"][0]["metric"] == "accuracy"
    helps = tables["helps"]
    assert [row["delta"] for row in helps] == sorted((row["delta"] for row in helps), reverse=True)
    # only heads whose 95% interval lies wholly above 0 (helps) or below 0 (hurts) are listed, all of them up to --top
    for name, sign in (("helps", 1), ("hurts", -1)):
        listed = {row["disabled"] for row in tables[name]}
        expected = {n for j, n in enumerate(r.names) if r.kinds[j] == "head" and (r.ci_low[j, 0] > 0 if sign > 0 else r.ci_high[j, 0] < 0)}
        assert listed <= expected and len(listed) == min(len(expected), 10), (name, listed, expected)
        assert all(row["noise?"] == "" and sign * row["delta"] > 0 for row in tables[name])


def test_unknown_head_is_a_clear_input_error(model_dir, tmp_path):
    r = _run("-m", str(model_dir), "-n", "4", "--heads", "L13H1", "-o", str(tmp_path / "x.h5"))
    assert r.exit_code == 3
    assert "L13H1" in r.stderr and "2 layers" in r.stderr
    assert not (tmp_path / "x.h5").exists()


def test_existing_output_is_refused_before_any_work(model_dir, tmp_path):
    out = tmp_path / "x.h5"
    out.write_bytes(b"keep me")
    r = _run("-m", str(model_dir), "-n", "4", "-o", str(out))
    assert r.exit_code == 6 and "--force" in r.stderr
    assert out.read_bytes() == b"keep me"


@covers("ablate", "--mode", "--heads", "--layers")
def test_explicit_sets_replace_the_default_sweep(model_dir, tmp_path):
    from bertsecrets_cli.jobs.ablate import read_ablation

    out = tmp_path / "sets.h5"
    r = _run("-m", str(model_dir), "-n", "8", "--heads", "L1H2,L2H1", "--heads", "L2H4", "--layers", "1,2", "--mode", "zero",
             "--bootstrap", "0", "-o", str(out), "--format", "tsv")
    assert r.exit_code == 0, r.output
    res = read_ablation(out)
    assert res.names == ["L1H2+L2H1", "L2H4", "L1+L2"] and res.kinds == ["heads", "head", "layers"] and res.mode == "zero"
    assert res.masks[2].all() and res.masks[0].sum() == 2
    assert np.isnan(res.ci_low).all()
    assert r.stdout.splitlines()[0].split("\t")[:2] == ["metric", "value"]  # tsv: the first table, alone


@covers("merge", "-o")
@covers("ablate", "-o", "-m", "-n", "--importance", "--bootstrap", "--shard", "--combine")
def test_shards_combine_into_the_unsharded_store(model_dir, full, tmp_path):
    from bertsecrets_cli.jobs.ablate import read_ablation

    path, _ = full
    parts = []
    for i in range(3):
        p = tmp_path / f"abl-{i}.h5"
        r = _run("-m", str(model_dir), "-n", "24", "--bootstrap", "200", "--importance", "--shard", f"{i}/3", "-o", str(p))
        assert r.exit_code == 0, r.output
        parts.append(p)
    sizes = [len(read_ablation(p).names) for p in parts]
    assert sizes == [3, 3, 4]
    assert read_ablation(parts[1]).importance is None  # computed once, by shard 0
    out = tmp_path / "combined.h5"
    r = runner.invoke(app, ["ablate", "--combine", "-o", str(out), "-q", *map(str, reversed(parts))])
    assert r.exit_code == 0, r.output
    a, b = read_ablation(path), read_ablation(out)
    assert a.names == b.names
    for attr in ("metrics", "delta", "ci_low", "ci_high", "predictions", "importance", "base_metrics"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr), err_msg=attr)
    # `merge` joins ablation shards too, the same way
    r = runner.invoke(app, ["merge", "-o", str(tmp_path / "merged.h5"), "-q", *map(str, parts)])
    assert r.exit_code == 0, r.output
    np.testing.assert_array_equal(read_ablation(tmp_path / "merged.h5").metrics, a.metrics)
    r = runner.invoke(app, ["ablate", "--combine", "-o", str(tmp_path / "bad.h5"), str(parts[0]), str(parts[2])])
    assert r.exit_code == 3 and "missing" in r.stderr
    r = runner.invoke(app, ["ablate", "--combine", "-o", str(tmp_path / "bad.h5"), str(parts[0]), str(parts[0]), str(parts[1]), str(parts[2])])
    assert r.exit_code == 3 and "also in" in r.stderr


@covers("ablate", "--greedy", "--no-sweep")
def test_greedy_reports_its_path_and_refuses_shards(model_dir, tmp_path):
    from bertsecrets_cli.jobs.ablate import read_ablation

    out = tmp_path / "greedy.h5"
    r = _run("-m", str(model_dir), "-n", "24", "--greedy", "--no-sweep", "--bootstrap", "100", "-o", str(out), "--format", "json", "--table", "all")
    assert r.exit_code == 0, r.output
    res = read_ablation(out)
    g = res.greedy
    assert g is not None and g.stopped
    assert np.all(np.asarray(g.gain) > 0)
    np.testing.assert_allclose(g.delta, np.asarray(g.score) - res.base_metrics[0])
    if g.heads:  # the first step is the best single head of the sweep
        best = max((m, -j) for j, m in enumerate(res.metrics[:, 0]))
        assert g.heads[0] == res.names[-best[1]]
    tables = json.loads(r.stdout)
    assert "greedy" in tables
    r = _run("-m", str(model_dir), "-n", "4", "--greedy", "--shard", "0/2", "-o", str(tmp_path / "g2.h5"))
    assert r.exit_code == 3 and "--shard" in r.stderr


def test_a_model_without_a_trained_classifier_is_refused(tmp_path, tiny_model_factory):
    r = _run("-m", str(tiny_model_factory("bert")), "-n", "4", "-o", str(tmp_path / "x.h5"))
    assert r.exit_code == 5 and "classification head" in r.stderr


def test_shard_spec_and_environment():
    from bertsecrets_cli.errors import InputError
    from bertsecrets_cli.jobs.ablate import resolve_shard, shard_range

    assert resolve_shard("1/4", {}) == (1, 4)
    assert resolve_shard(None, {"RANK": "1", "WORLD_SIZE": "2"}) is None  # the environment only with 'auto'
    assert resolve_shard("auto", {"RANK": "1", "WORLD_SIZE": "2"}) == (1, 2)
    assert resolve_shard("auto", {"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_COUNT": "4"}) == (2, 4)
    for bad in ("4/4", "1", "a/b", "-1/2"):
        with pytest.raises(InputError):
            resolve_shard(bad, {})
    with pytest.raises(InputError):
        resolve_shard("auto", {})
    ranges = [shard_range(78, (i, 5)) for i in range(5)]
    assert ranges[0][0] == 0 and ranges[-1][1] == 78 and all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


def test_the_task_defaults_to_the_one_the_model_was_fine_tuned_for(model_dir, tmp_path):
    import shutil

    from bertsecrets_cli.jobs.ablate import read_ablation

    folder = tmp_path / "mrpc-model"
    shutil.copytree(model_dir, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["finetuning_task"] = "mrpc"
    (folder / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "m.h5"
    r = _run("-m", str(folder), "-n", "6", "--heads", "L1H1", "--bootstrap", "0", "-o", str(out))
    assert r.exit_code == 0, r.output
    res = read_ablation(out)
    assert res.task == "mrpc" and res.metric_names == ["f1", "accuracy"]


# ---------------------------------------------------------------------------------------------
# stops and --resume: a real SIGTERM in the middle of the sweep, then --resume


def _sigterm_on_call(monkeypatch, module, name: str, call: int) -> None:
    """Wrap module.name so that its ``call``-th call first sends this process a real SIGTERM."""
    import os
    import signal

    real = getattr(module, name)
    calls = {"n": 0}

    def wrapped(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == call:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)

    monkeypatch.setattr(module, name, wrapped)


def _count_calls(monkeypatch, module, name: str) -> dict[str, int]:
    real = getattr(module, name)
    calls = {"n": 0}

    def wrapped(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(module, name, wrapped)
    return calls


@covers("ablate", "--engine", "--resume")
@pytest.mark.parametrize("engine", ["fast", "naive"])
def test_sigterm_keeps_the_finished_sweep_and_resume_completes_it_exactly(engine, model_dir, tmp_path, monkeypatch):
    import bertsecrets_cli.model.attention as attention
    import bertsecrets_cli.model.sweep as sweep
    from bertsecrets_cli.jobs.ablate import read_ablation

    args = ("-m", str(model_dir), "-n", "24", "--batch-size", "4", "--bootstrap", "100", "--engine", engine)
    ref = tmp_path / "ref.h5"
    assert _run(*args, "-o", str(ref)).exit_code == 0
    out = tmp_path / "abl.h5"
    ckpt = tmp_path / ".abl.h5.ablate-resume.npz"
    with monkeypatch.context() as m:
        if engine == "fast":  # one capture pass per batch: stop during the 3rd of 6 batches
            _sigterm_on_call(m, sweep, "_capture_pass", 3)
        else:  # one full evaluation per variant (after the baseline's): stop during the 4th
            _sigterm_on_call(m, attention, "logits_for", 5)
        r = _run(*args, "-o", str(out))
    assert r.exit_code == 75, r.stderr
    unit = "batches" if engine == "fast" else "variants"
    expected = "3 of 6 batches" if engine == "fast" else "4 of 10 variants"
    assert expected in r.stderr and unit in r.stderr and "--resume" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not out.exists() and ckpt.exists()
    # without --resume the kept work is not thrown away silently; with other options it is not mixed in
    r = _run(*args, "-o", str(out))
    assert r.exit_code == 6 and "--resume" in r.stderr
    r = _run(*args[:-1], "naive" if engine == "fast" else "fast", "-o", str(out), "--resume")
    assert r.exit_code == 3 and "other" in r.stderr, r.stderr
    with monkeypatch.context() as m:
        counted = _count_calls(m, sweep, "_capture_pass") if engine == "fast" else _count_calls(m, attention, "logits_for")
        r = _run(*args, "-o", str(out), "--resume")
    assert r.exit_code == 0, r.stderr
    assert counted["n"] == (3 if engine == "fast" else 6)  # only the unfinished batches / variants were evaluated
    assert not ckpt.exists()
    a, b = read_ablation(ref), read_ablation(out)
    np.testing.assert_array_equal(a.base_logits, b.base_logits)
    for attr in ("metrics", "delta", "ci_low", "ci_high", "predictions"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr), err_msg=attr)


def test_a_stop_while_the_store_is_written_keeps_the_whole_sweep(model_dir, tmp_path, monkeypatch):
    """SIGTERM after the sweep (the store being written) keeps every unit: --resume evaluates nothing again."""
    import bertsecrets_cli.jobs.ablate as ablate
    import bertsecrets_cli.model.sweep as sweep
    from bertsecrets_cli.errors import Interrupted

    args = ("-m", str(model_dir), "-n", "24", "--batch-size", "4", "--bootstrap", "20")
    out = tmp_path / "abl.h5"

    def stopped(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise Interrupted("stopped by SIGTERM before the work was saved")  # what the SIGTERM handler raises there

    with monkeypatch.context() as m:
        m.setattr(ablate, "write_ablation", stopped)
        r = _run(*args, "-o", str(out))
    assert r.exit_code == 75 and "6 of 6 batches" in r.stderr and "--resume" in r.stderr, r.stderr
    assert not out.exists() and (tmp_path / ".abl.h5.ablate-resume.npz").exists()
    with monkeypatch.context() as m:
        counted = _count_calls(m, sweep, "_capture_pass")
        r = _run(*args, "-o", str(out), "--resume")
    assert r.exit_code == 0 and counted["n"] == 0 and out.exists(), r.stderr


def test_a_crash_loses_at_most_the_work_since_the_last_periodic_checkpoint(model_dir, tmp_path, monkeypatch):
    """SIGKILL cannot be caught: the checkpoint saved while sweeping (every minute; here after every batch) is what survives."""
    import bertsecrets_cli.jobs.ablate as ablate
    import bertsecrets_cli.model.sweep as sweep
    from bertsecrets_cli.jobs.ablate import read_ablation

    args = ("-m", str(model_dir), "-n", "24", "--batch-size", "4", "--bootstrap", "100")
    ref = tmp_path / "ref.h5"
    assert _run(*args, "-o", str(ref)).exit_code == 0
    out = tmp_path / "abl.h5"
    real = sweep._capture_pass
    calls = {"n": 0}

    def crash(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == 5:
            raise MemoryError("simulated crash")
        return real(*a, **k)

    with monkeypatch.context() as m:
        m.setattr(ablate, "CHECKPOINT_EVERY_S", 0.0)
        m.setattr(sweep, "_capture_pass", crash)
        r = _run(*args, "-o", str(out))
    assert r.exit_code == 1 and not out.exists()
    with monkeypatch.context() as m:
        counted = _count_calls(m, sweep, "_capture_pass")
        r = _run(*args, "-o", str(out), "--resume")
    assert r.exit_code == 0 and counted["n"] == 2, r.stderr  # batches 1-4 were saved before the crash in the 5th
    np.testing.assert_array_equal(read_ablation(ref).metrics, read_ablation(out).metrics)
