"""finetune: Trainer runs on tiny models (a few steps, CPU), the model folder, determinism, resume, refusals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.errors import InputError, Interrupted, ModelError, OutputError
from bertsecrets_cli.jobs.finetune import FinetuneOptions, run_eval_only, run_finetune
from bertsecrets_cli.store.evaluation import read_evaluation

from helpers import covers, one_line_error as _one_line_error

one_line_error = partial(_one_line_error, last=True)

runner = CliRunner()


def options(model: Path, **kw) -> FinetuneOptions:
    """A few optimisation steps over a few demo examples: seconds on CPU."""
    over = {"max_steps": 4, "batch_size": 8, "max_length": 48, **kw.pop("overrides", {})}
    base = dict(model=str(model), task="sst2", train_limit=32, eval_limit=16, preset="demo", overrides=over,
                device="cpu", quiet=True, save_steps=2, logging_steps=1)
    base.update(kw)
    return FinetuneOptions(**base)


@pytest.fixture(scope="module")
def encoder(tiny_model_factory) -> Path:
    return tiny_model_factory("bert", classifier=False)


@pytest.fixture(scope="module")
def finished(encoder, tmp_path_factory) -> tuple[Path, object]:
    """One complete run, shared by the tests that only read its results."""
    out = tmp_path_factory.mktemp("ft") / "sst2"
    return out, run_finetune(options(encoder), out, command="test")


# --------------------------------------------------------------------------- the model folder


def test_the_model_folder_is_a_loadable_classifier_with_task_labels(finished) -> None:
    from bertsecrets_cli.model.load import load_model

    out, res = finished
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["id2label"] == {"0": "negative", "1": "positive"} and cfg["finetuning_task"] == "sst2"
    assert cfg["architectures"] == ["BertForSequenceClassification"]
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert not list(out.glob("checkpoint-*")) and not (out / "job.json").exists()
    assert not out.with_name(out.name + ".partial").exists()
    lm = load_model(str(out), device="cpu", task_head=True)  # what --model runs/sst2 does in every subcommand
    assert lm.model.config.num_labels == 2 and lm.n_layers == 2


def test_the_evaluation_store_holds_per_example_results_and_baselines(finished) -> None:
    out, res = finished
    rec = read_evaluation(out / "eval.h5")
    assert len(rec.ids) == 16 and rec.logits.shape == (16, 2) and rec.task == "sst2"
    assert rec.predictions.tolist() == rec.logits.argmax(-1).tolist()
    assert rec.metrics["accuracy"] == pytest.approx(float(np.mean(rec.predictions == rec.labels)))
    assert rec.metrics == res.metrics and rec.main_metric == "accuracy"
    assert set(rec.baselines) == {"majority", "untrained_head"}
    assert [r[0] for r in res.table.rows] == ["majority class (train)", "pretrained + untrained head", "fine-tuned"]
    assert rec.label_names == ["negative", "positive"]
    assert [h["step"] for h in rec.log_history if "loss" in h] == [1, 2, 3, 4]
    record = json.loads((out / "finetune.json").read_text())
    assert record["hyperparameters"]["max_steps"] == 4 and record["global_step"] == 4 and record["n_train"] == 32


def test_eval_only_on_the_folder_reproduces_the_stored_metrics(finished, tmp_path) -> None:
    out, res = finished
    # task sst2 comes from the folder's config, max length 48 from its finetune.json
    again = run_eval_only(FinetuneOptions(model=str(out), eval_limit=16, device="cpu", quiet=True), tmp_path / "again.h5")
    assert again.hyper.max_length == 48
    assert again.metrics == res.metrics
    np.testing.assert_allclose(read_evaluation(tmp_path / "again.h5").logits, read_evaluation(out / "eval.h5").logits, atol=1e-5)


# --------------------------------------------------------------------------- determinism and resume


def test_same_seed_and_data_give_identical_results(encoder, finished, tmp_path) -> None:
    out, res = finished
    twin = run_finetune(options(encoder), tmp_path / "twin", command="test")
    assert twin.metrics == res.metrics
    np.testing.assert_array_equal(read_evaluation(tmp_path / "twin" / "eval.h5").logits, read_evaluation(out / "eval.h5").logits)


def test_another_seed_gives_another_model(encoder, finished, tmp_path) -> None:
    out, _ = finished
    run_finetune(options(encoder, overrides={"seed": 7}), tmp_path / "s7", command="test")
    assert not np.array_equal(read_evaluation(tmp_path / "s7" / "eval.h5").logits, read_evaluation(out / "eval.h5").logits)


def _stop_after(monkeypatch, step: int) -> None:
    """Act as if SIGTERM arrived during ``step`` (the real signal path: flag -> checkpoint -> exit 75)."""
    from bertsecrets_cli.model import train as train_mod

    orig = train_mod._Callbacks.stop

    def stop(flag):
        cb = orig(flag)
        inner = cb.on_step_end

        def on_step_end(args, state, control, **kw):
            if state.global_step == step:
                flag.signal = "SIGTERM"
            return inner(args, state, control, **kw)

        cb.on_step_end = on_step_end
        return cb

    monkeypatch.setattr(train_mod._Callbacks, "stop", staticmethod(stop))


def test_a_stopped_run_keeps_a_checkpoint_and_resume_finishes_it_identically(encoder, finished, tmp_path, monkeypatch) -> None:
    ref_out, ref = finished
    out = tmp_path / "sst2"
    _stop_after(monkeypatch, 3)
    with pytest.raises(Interrupted, match="--resume"):
        run_finetune(options(encoder), out, command="test")
    partial = out.with_name("sst2.partial")
    assert not out.exists() and (partial / "checkpoint-3").is_dir()
    monkeypatch.undo()
    with pytest.raises(OutputError, match="--resume"):
        run_finetune(options(encoder), out, command="test")  # neither resumed nor forced: refused
    with pytest.raises(OutputError, match="other options"):
        run_finetune(options(encoder, overrides={"lr": 1e-3}, resume=True), out, command="test")
    res = run_finetune(options(encoder, resume=True), out, command="test")
    assert res.global_step == 4 and not partial.exists()
    assert json.loads((out / "finetune.json").read_text())["resumed_from"].endswith("checkpoint-3")
    assert res.metrics == ref.metrics
    np.testing.assert_allclose(read_evaluation(out / "eval.h5").logits, read_evaluation(ref_out / "eval.h5").logits, atol=1e-6)


# --------------------------------------------------------------------------- outputs that exist


def test_an_existing_folder_is_refused_and_untouched_then_replaced_with_force(encoder, finished, tmp_path) -> None:
    out = tmp_path / "runs" / "sst2"
    shutil.copytree(finished[0], out)
    before = (out / "model.safetensors").read_bytes()
    with pytest.raises(OutputError, match="--force"):
        run_finetune(options(encoder, overrides={"seed": 3}), out, command="test")
    assert (out / "model.safetensors").read_bytes() == before
    run_finetune(options(encoder, overrides={"seed": 3}, force=True), out, command="test")
    assert (out / "model.safetensors").read_bytes() != before
    assert sorted(p.name for p in out.parent.iterdir()) == ["sst2"]  # no old copy or partial left behind


def test_force_never_replaces_a_folder_that_is_not_a_finetune_output(encoder, tmp_path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not a bertsecrets finetune folder"):
        run_finetune(options(encoder, force=True), out, command="test")
    assert (out / "notes.txt").read_text() == "keep me"


# --------------------------------------------------------------------------- tasks, sources, baselines


def test_stsb_is_trained_as_regression(encoder, tmp_path) -> None:
    res = run_finetune(options(encoder, task="stsb"), tmp_path / "stsb", command="test")
    cfg = json.loads((tmp_path / "stsb" / "config.json").read_text())
    assert len(cfg["id2label"]) == 1  # config.json keeps num_labels as id2label
    assert cfg["problem_type"] == "regression"
    rec = read_evaluation(tmp_path / "stsb" / "eval.h5")
    assert rec.logits.shape == (16, 1) and set(rec.metrics) == {"pearson", "spearman"}
    assert rec.predictions.tolist() == pytest.approx(rec.logits[:, 0].tolist())
    assert np.isnan(res.baselines["majority"]["pearson"])  # a constant has no correlation


def test_a_glue_folder_and_a_csv_file_train_too(encoder, tmp_path) -> None:
    glue = tmp_path / "RTE"
    glue.mkdir()
    rows = [("A man is walking.", "A person walks.", "entailment"), ("A man is walking.", "Nobody moves.", "not_entailment")] * 8
    for split in ("train", "dev"):
        lines = ["index\tsentence1\tsentence2\tlabel"] + [f"{i}\t{a}\t{b}\t{lab}" for i, (a, b, lab) in enumerate(rows)]
        (glue / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    res = run_finetune(options(encoder, task="rte", data=str(glue), train_limit=None, eval_limit=None), tmp_path / "rte", command="test")
    assert res.n_train == 16 and res.n_eval == 16
    csv = tmp_path / "train.csv"
    csv.write_text("text,label\n" + "".join(f"good film number {i},1\nbad film number {i},0\n" for i in range(8)))
    with pytest.raises(InputError, match="--eval-data"):
        run_finetune(options(encoder, data=str(csv), train_limit=None), tmp_path / "csv", command="test")
    res = run_finetune(options(encoder, data=str(csv), eval_data=str(csv), train_limit=None, eval_limit=None), tmp_path / "csv", command="test")
    assert res.n_train == 16 and res.n_eval == 16


def test_random_init_is_recorded_and_named(encoder, tmp_path) -> None:
    res = run_finetune(options(encoder, init="random"), tmp_path / "rand", command="test")
    assert [r[0] for r in res.table.rows][1:] == ["random init, untrained", "fine-tuned (random init)"]
    record = json.loads((tmp_path / "rand" / "finetune.json").read_text())
    assert record["base_model_fingerprint"] == "random-init"


def test_untrained_head_baseline_needs_asking_for(encoder, tmp_path) -> None:
    with pytest.raises(ModelError, match="no classification head"):
        run_eval_only(FinetuneOptions(model=str(encoder), task="sst2", eval_limit=8, device="cpu", quiet=True), None)
    a = run_eval_only(FinetuneOptions(model=str(encoder), task="sst2", eval_limit=8, device="cpu", quiet=True, untrained_head=True), None)
    b = run_eval_only(FinetuneOptions(model=str(encoder), task="sst2", eval_limit=8, device="cpu", quiet=True, untrained_head=True), None)
    assert a.metrics == b.metrics  # the fresh head is seeded
    assert [r[0] for r in a.table.rows] == ["majority class (train)", "pretrained + untrained head"]


def test_a_head_for_another_number_of_labels_is_refused(finished) -> None:
    with pytest.raises(InputError, match="predicts 2 label"):
        run_eval_only(FinetuneOptions(model=str(finished[0]), task="stsb", eval_limit=4, device="cpu", quiet=True), None)


# --------------------------------------------------------------------------- the CLI: output and bad input


@covers("finetune", "-o", "--model", "--train-limit", "--eval-limit", "--batch-size", "--max-steps", "--logging-steps")
def test_cli_prints_the_table_on_stdout_and_progress_on_stderr(encoder, tmp_path) -> None:
    res = runner.invoke(app, ["finetune", "--model", str(encoder), "--task", "mrpc", "--train-limit", "16", "--eval-limit", "8", "--max-steps", "2",
                              "--batch-size", "8", "--device", "cpu", "-o", str(tmp_path / "mrpc"), "-f", "json", "--logging-steps", "1"])
    assert res.exit_code == 0, res.stderr
    rows = json.loads(res.stdout)
    assert [r["model"] for r in rows] == ["majority class (train)", "pretrained + untrained head", "fine-tuned"]
    assert set(rows[0]) == {"model", "f1", "accuracy"}
    assert "loss" in res.stderr and "demo data" in res.stderr


@covers("finetune", "--eval-data", "--preset", "--grad-accum", "--precision", "--eval-only", "--untrained-head")
def test_cli_refusals_are_one_line_with_their_exit_code(encoder, finished, tmp_path) -> None:
    base = ["finetune", "--model", str(encoder), "--device", "cpu", "--max-steps", "1", "--train-limit", "8", "--eval-limit", "4"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "label": 1}\n{"text": "odd", "label": 7}\n')
    one_line_error(runner.invoke(app, [*base, "--data", str(bad), "--eval-data", str(bad), "-o", str(tmp_path / "x")]), 3, "bad.jsonl:2", "label 7")
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("words,label\nfine,1\n")
    one_line_error(runner.invoke(app, [*base, "--data", str(nocol), "--eval-data", str(nocol), "-o", str(tmp_path / "y")]), 3, "no text column")
    one_line_error(runner.invoke(app, [*base, "-o", str(finished[0])]), 6, "exists", "--force")
    one_line_error(runner.invoke(app, ["finetune", "--eval-only", "--model", str(encoder), "--device", "cpu"]), 5, "no classification head", "--untrained-head")
    one_line_error(runner.invoke(app, [*base, "--batch-size", "8", "--grad-accum", "3", "-o", str(tmp_path / "z")]), 3, "divisible")
    one_line_error(runner.invoke(app, [*base]), 3, "--output")
    one_line_error(runner.invoke(app, [*base, "--preset", "fast", "-o", str(tmp_path / "w")]), 3, "--preset fast")
    one_line_error(runner.invoke(app, [*base, "--precision", "fp16", "-o", str(tmp_path / "v")]), 3, "fp16 needs a CUDA device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "nocol.csv"]  # no output, no .partial left


# --------------------------------------------------------------------------- two processes (gloo)


@covers("finetune", "--no-baselines")
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_torchrun_with_two_cpu_processes_trains_one_model(encoder, tmp_path) -> None:
    """Trainer's own data parallelism under torchrun (gloo on CPU); only rank 0 writes the folder."""
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun not installed")
    out = tmp_path / "ddp"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", "29517", "-m", "bertsecrets_cli", "finetune", "--model", str(encoder),
           "--task", "sst2", "--train-limit", "32", "--eval-limit", "8", "--max-steps", "2", "--batch-size", "8", "--max-length", "32",
           "--device", "cpu", "-o", str(out), "-f", "json", "--no-baselines"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=220)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout)  # one table: only rank 0 prints
    assert rows[-1]["model"] == "fine-tuned"
    record = json.loads((out / "finetune.json").read_text())
    assert record["world_size"] == 2 and record["per_device_batch"] == 4 and record["global_step"] == 2


@covers("finetune", "--resume")
def test_cli_resume_continues_a_stopped_run_from_its_checkpoint(encoder, tmp_path, monkeypatch) -> None:
    out = tmp_path / "run"
    args = ["finetune", "--model", str(encoder), "--task", "sst2", "--train-limit", "16", "--eval-limit", "4", "--max-steps", "4",
            "--batch-size", "4", "--save-steps", "1", "--device", "cpu", "-o", str(out), "-q"]
    _stop_after(monkeypatch, 2)
    stopped = runner.invoke(app, args)
    assert stopped.exit_code == 75 and "--resume" in stopped.stderr
    monkeypatch.undo()
    assert runner.invoke(app, args).exit_code == 6  # the checkpoint is kept, not silently overwritten
    resumed = runner.invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.stderr
    record = json.loads((out / "finetune.json").read_text())
    assert record["resumed_from"].endswith("checkpoint-2") and record["global_step"] == 4
