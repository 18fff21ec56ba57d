"""Ablation of causal decoders (issue 30 item 4) beyond the plain loss sweep: --importance, --greedy, --shard and
--resume with ``--metric loss``; each checked against the family's own model, edited by hooks without bertsecrets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from bertsecrets_cli.cli.app import app
from bertsecrets_cli.jobs.ablate import read_ablation

from conftest import DECODER_TOKENIZERS, build_tokenizer, tiny_config
from helpers import covers, strengthen

runner = CliRunner()
TEXT = ("The cat sat on the mat, and the dog sat on the rug. A bird sang in the old tree while the children played. "
        "Nobody knew where the river went after the hills, so they followed it for days. ")
MAX_LEN = 16
HEAD_DIM = 8  # tiny_config: hidden 32, 4 heads


@pytest.fixture(scope="module")
def lms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, object]]:
    """A tiny GPT-2 and a tiny Llama language model with large random weights (so heads matter), and their tokenizers."""
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("decoder-lms")
    out = {}
    for family in ("gpt2", "llama"):
        tok = build_tokenizer(*DECODER_TOKENIZERS[family])
        ids = {k: getattr(tok, k) for k in ("bos_token_id", "eos_token_id") if getattr(tok, k, None) is not None}
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(tiny_config(family, len(tok), tok.pad_token_id, **ids))
        strengthen(model)
        model.save_pretrained(root / family)
        tok.save_pretrained(root / family)
        out[family] = (root / family, tok)
    (root / "corpus.txt").write_text(TEXT, encoding="utf-8")
    return out


def _corpus(lms) -> Path:  # noqa: ANN001
    return lms["gpt2"][0].parent / "corpus.txt"


def _ablate(lms, family: str, out: Path, *args: str):  # noqa: ANN001, ANN202
    return runner.invoke(app, ["ablate", "-m", str(lms[family][0]), "--data", str(_corpus(lms)), "--max-length", str(MAX_LEN),
                               "--batch-size", "16", "--device", "cpu", "-q", "-o", str(out), *args])


def _windows(lms, family: str) -> list[torch.Tensor]:  # noqa: ANN001
    """Each window's token ids, tokenised as ablate does (the windows' texts, with the tokenizer's own special tokens)."""
    from bertsecrets_cli.data.windows import window_dataset

    tok = lms[family][1]
    ds, _ = window_dataset(_corpus(lms), tok, MAX_LEN, MAX_LEN - tok.num_special_tokens_to_add(pair=False))
    return [tok(e.text_a, return_tensors="pt", truncation=True, max_length=MAX_LEN)["input_ids"] for e in ds.examples]


def _reference(lms, family: str):  # noqa: ANN001, ANN202
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(lms[family][0], attn_implementation="eager").eval()


def _out_proj(model, family: str, layer: int):  # noqa: ANN001, ANN202
    """The module whose input is the layer's heads' outputs side by side ([B, T, heads x head_dim])."""
    return model.transformer.h[layer].attn.c_proj if family == "gpt2" else model.model.layers[layer].self_attn.o_proj


def _summed_loss(model, windows, family: str, edit=None):  # noqa: ANN001, ANN202
    """(summed next-token cross-entropy over every window, predicted tokens); ``edit(layer, x)`` rewrites each
    layer's head outputs x in place before the output projection."""
    handles = [_out_proj(model, family, l).register_forward_pre_hook(lambda _m, a, l=l: (edit(l, a[0].clone()),)) for l in range(2)] if edit else []
    total, count = 0.0, 0
    try:
        for length in sorted({w.shape[1] for w in windows}):  # windows of one length in one batch: no padding
            ids = torch.cat([w for w in windows if w.shape[1] == length])
            total = total + model(input_ids=ids, labels=ids).loss * ids.shape[0] * (length - 1)
            count += ids.shape[0] * (length - 1)
    finally:
        for h in handles:
            h.remove()
    return total, count


@pytest.fixture(scope="module")
def full_llama(lms, tmp_path_factory) -> Path:  # noqa: ANN001
    """Every single head and layer of the tiny Llama, with gradient importance: the reference run."""
    out = tmp_path_factory.mktemp("abl-loss") / "full.h5"
    res = _ablate(lms, "llama", out, "--metric", "loss", "--importance", "--bootstrap", "100")
    assert res.exit_code == 0, res.stderr
    return out


@pytest.mark.slow
def test_loss_importance_is_the_autograd_gradient_of_the_next_token_loss_by_each_heads_output(lms, full_llama) -> None:
    """Michel et al.'s importance on the LM loss: |d summed loss / d gate| / predicted tokens, where the gate scales
    each head's slice of o_proj's input in the family's own eager model (all windows in one batch: one absolute value)."""
    from bertsecrets_cli.analysis.ablation import normalise_importance

    r = read_ablation(full_llama)
    model = _reference(lms, "llama")
    gates = torch.ones(2, 4, requires_grad=True)

    def gate(layer: int, x: torch.Tensor) -> torch.Tensor:
        return (x.view(*x.shape[:-1], 4, HEAD_DIM) * gates[layer][:, None]).view(x.shape)

    total, count = _summed_loss(model, _windows(lms, "llama"), "llama", gate)
    (grad,) = torch.autograd.grad(total, gates)
    want = grad.abs().double().numpy() / count
    np.testing.assert_allclose(r.importance_raw, want, rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(r.importance, normalise_importance(want), rtol=1e-3, atol=1e-6)
    assert want.max() > 10 * want.min() > 0  # the heads differ: a ranking that means something
    # and the store is the task metric's: importance per head, single heads and layers with intervals
    assert r.main_metric == "loss" and r.kinds.count("head") == 8 and r.kinds.count("layer") == 2
    assert np.all(r.ci_low[:, 0] <= r.delta[:, 0]) and np.all(r.delta[:, 0] <= r.ci_high[:, 0])


@pytest.mark.slow
@covers("ablate", "--metric", "--greedy", "--greedy-steps")
def test_loss_greedy_takes_the_head_whose_removal_lowers_the_loss_most(lms, tmp_path) -> None:
    """Each greedy step disables the head (given the earlier ones) whose zeroing gives the LOWEST loss, as computed
    on GPT-2's own model with head slices of c_proj's input zeroed by a hook; the path stops when none lowers it."""
    import json

    out = tmp_path / "greedy.h5"
    res = _ablate(lms, "gpt2", out, "--metric", "loss", "--greedy", "--greedy-steps", "2", "--mode", "zero", "--bootstrap", "50", "--format", "json", "--table", "greedy")
    assert res.exit_code == 0, res.stderr
    r = read_ablation(out)
    model, windows = _reference(lms, "gpt2"), _windows(lms, "gpt2")

    def loss_without(heads: list[tuple[int, int]]) -> float:
        def zero(layer: int, x: torch.Tensor) -> torch.Tensor:
            for l, h in heads:
                if l == layer:
                    x[..., h * HEAD_DIM : (h + 1) * HEAD_DIM] = 0.0
            return x

        with torch.inference_mode():
            total, count = _summed_loss(model, windows, "gpt2", zero)
        return float(total) / count

    base = loss_without([])
    assert r.base_metrics[0] == pytest.approx(base, abs=1e-4)
    path: list[tuple[int, int]] = []
    score = base
    for step in range(2):
        cand = [(l, h) for l in range(2) for h in range(4) if (l, h) not in path]
        losses = [loss_without(path + [x]) for x in cand]
        best = int(np.argmin(losses))
        assert losses[best] < score, "this model must have a head whose removal lowers the loss"
        path.append(cand[best])
        assert r.greedy.heads[step] == f"L{cand[best][0] + 1}H{cand[best][1] + 1}"
        assert r.greedy.score[step] == pytest.approx(losses[best], abs=1e-4)
        assert r.greedy.gain[step] == pytest.approx(score - losses[best], abs=1e-4) and r.greedy.gain[step] > 0
        score = losses[best]
    assert r.greedy.delta[-1] == pytest.approx(score - base, abs=1e-4) and r.greedy.delta[-1] < 0
    assert "--greedy-steps 2" in r.greedy.stopped
    # the first pick is the single-head sweep's lowest loss; the helps table lists it first (lower loss = helps)
    heads = [j for j, k in enumerate(r.kinds) if k == "head"]
    assert r.names[min(heads, key=lambda j: r.metrics[j, 0])] == r.greedy.heads[0]
    rows = json.loads(res.stdout)
    assert [row["disable"] for row in rows] == r.greedy.heads and all(row["gain"] > 0 > row["delta"] for row in rows)


@pytest.mark.slow
@covers("ablate", "--metric", "--importance", "--shard", "--combine")
def test_loss_shards_combine_into_the_unsharded_store(lms, full_llama, tmp_path) -> None:
    parts = []
    for i in range(2):
        p = tmp_path / f"part{i}.h5"
        res = _ablate(lms, "llama", p, "--metric", "loss", "--importance", "--bootstrap", "100", "--shard", f"{i}/2")
        assert res.exit_code == 0, res.stderr
        parts.append(p)
    assert [len(read_ablation(p).names) for p in parts] == [5, 5] and read_ablation(parts[1]).importance is None
    res = runner.invoke(app, ["ablate", "--combine", "-o", str(tmp_path / "all.h5"), *map(str, parts), "-q"])
    assert res.exit_code == 0, res.stderr
    a, b = read_ablation(full_llama), read_ablation(tmp_path / "all.h5")
    assert a.names == b.names and a.main_metric == b.main_metric == "loss"
    for attr in ("base_metrics", "metrics", "delta", "ci_low", "ci_high", "importance", "importance_raw", "masks"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr), err_msg=attr)


@pytest.mark.slow
@covers("ablate", "--metric", "--resume")
def test_loss_sweep_stopped_by_sigterm_resumes_to_the_uninterrupted_result(lms, full_llama, tmp_path, monkeypatch) -> None:
    """A real SIGTERM during the 4th variant's evaluation keeps 4 of 10 variants; --resume evaluates only the other 6."""
    import os
    import signal

    import bertsecrets_cli.model.lm_loss as lm_loss

    real = lm_loss.window_losses
    calls = {"n": 0, "stop_at": 5}  # call 1 is the baseline

    def counted(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == calls["stop_at"]:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)

    monkeypatch.setattr(lm_loss, "window_losses", counted)
    out = tmp_path / "abl.h5"
    res = _ablate(lms, "llama", out, "--metric", "loss", "--importance", "--bootstrap", "100")
    assert res.exit_code == 75 and "4 of 10 variants" in res.stderr and "--resume" in res.stderr, res.stderr
    assert not out.exists() and (tmp_path / ".abl.h5.ablate-resume.npz").exists()
    calls.update(n=0, stop_at=-1)
    res = _ablate(lms, "llama", out, "--metric", "loss", "--importance", "--bootstrap", "100", "--resume")
    assert res.exit_code == 0, res.stderr
    assert calls["n"] == 6  # only the unfinished variants
    a, b = read_ablation(full_llama), read_ablation(out)
    for attr in ("base_metrics", "base_logits", "metrics", "delta", "ci_low", "ci_high", "importance_raw"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr), err_msg=attr)


# ---------------------------------------------------------------------------------------------
# a decoder with a sequence-classification head: finetune, then ablate --metric task


@pytest.fixture(scope="module")
def gpt2_classifier(lms, tmp_path_factory) -> tuple[Path, object]:  # noqa: ANN001
    """The tiny GPT-2 language model fine-tuned on the demo sst2 task through the CLI (its tokenizer has no padding token)."""
    out = tmp_path_factory.mktemp("ft-gpt2") / "sst2"
    res = runner.invoke(app, ["finetune", "-m", str(lms["gpt2"][0]), "--task", "sst2", "--train-limit", "16", "--eval-limit", "12", "--max-steps", "8",
                              "--batch-size", "8", "--lr", "3e-3", "--warmup", "0", "--seed", "3", "--max-length", "48", "--save-steps", "0",
                              "--no-baselines", "--device", "cpu", "-o", str(out)])
    return out, res


@pytest.mark.slow
def test_finetune_trains_a_gpt2_classifier_padding_with_its_end_of_sequence_token(lms, gpt2_classifier) -> None:
    """The fine-tuned GPT-2 classifier has a lower cross-entropy on its training texts than the model it started from
    (the language model with the same seeded fresh head), both computed by transformers on each text alone."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, set_seed

    from bertsecrets_cli.jobs.extract import DataOptions, load_examples

    out, res = gpt2_classifier
    assert res.exit_code == 0, res.stderr
    assert "no padding token; padding with its end-of-sequence token '<|endoftext|>'" in res.stderr
    cfg = AutoConfig.from_pretrained(out)
    assert cfg.architectures == ["GPT2ForSequenceClassification"] and cfg.pad_token_id == cfg.eos_token_id
    _, ds = load_examples(DataOptions(task="sst2", split="train", limit=16))
    tok = lms["gpt2"][1]

    def train_loss(model) -> float:  # noqa: ANN001
        with torch.inference_mode():
            return float(np.mean([torch.nn.functional.cross_entropy(model(input_ids=tok(e.text_a, return_tensors="pt", truncation=True, max_length=48)["input_ids"]).logits,
                                                                    torch.tensor([int(e.label)])) for e in ds.examples]))

    set_seed(3)  # finetune draws the fresh head from --seed
    before = train_loss(AutoModelForSequenceClassification.from_pretrained(lms["gpt2"][0], num_labels=2).eval())
    after = train_loss(AutoModelForSequenceClassification.from_pretrained(out).eval())
    assert after < before - 0.05, (before, after)


def _reference_logits(folder: Path, texts: list[str], layer: int, head: int, mode: str) -> torch.Tensor:
    """GPT2ForSequenceClassification's own eager logits, each text alone (no padding), with head ``head`` of ``layer``
    edited in c_proj's input: uniform = the mean of the value vectors of positions 0..t (the causal prefix), zero,
    or mean = the head's output averaged over every token of the texts."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager").eval()
    attn = model.transformer.h[layer].attn
    sl = slice(head * HEAD_DIM, (head + 1) * HEAD_DIM)
    seen: dict[str, torch.Tensor] = {}
    outputs = []
    h1 = attn.c_attn.register_forward_hook(lambda _m, _a, o: seen.__setitem__("v", o[0, :, 2 * 32 :][:, sl]))
    h2 = attn.c_proj.register_forward_pre_hook(lambda _m, a: outputs.append(a[0][0, :, sl].clone()))
    ids = [tok(t, return_tensors="pt", truncation=True, max_length=48)["input_ids"] for t in texts]
    with torch.inference_mode():
        for x in ids:
            model(input_ids=x)
    h2.remove()
    mean = torch.cat(outputs).double().mean(0).float()

    def edit(_m, a):  # noqa: ANN001, ANN202
        x = a[0].clone()
        v = seen["v"]
        x[0, :, sl] = {"uniform": v.cumsum(0) / torch.arange(1, v.shape[0] + 1)[:, None], "zero": torch.zeros_like(v), "mean": mean.expand_as(v)}[mode]
        return (x,)

    h2 = attn.c_proj.register_forward_pre_hook(edit)
    with torch.inference_mode():
        logits = torch.cat([model(input_ids=x).logits for x in ids])
    h1.remove()
    h2.remove()
    return logits


@pytest.mark.slow
def test_a_disabled_head_of_a_decoder_classifier_is_edited_over_its_causal_prefix_in_padded_batches(gpt2_classifier) -> None:
    """The task path's intervention on a fine-tuned GPT-2, in a right-padded batch of texts of different lengths, equals
    GPT-2's own classifier run on each text alone with the head edited by hand: uniform is the mean over the
    positions the query may see (never later ones), and the head reads each text's last real token, not a pad."""
    from bertsecrets_cli.data.tasks import get_task
    from bertsecrets_cli.jobs.evaluate import batches_for
    from bertsecrets_cli.jobs.extract import DataOptions, load_examples
    from bertsecrets_cli.model.attention import Intervention, logits_for
    from bertsecrets_cli.model.sweep import collect_mean_outputs

    out, _ = gpt2_classifier
    lm = load_model_classifier(out)
    _, ds = load_examples(DataOptions(task="sst2", limit=6))
    texts = [e.text_a for e in ds.examples]
    assert len({len(lm.tokenizer(t)["input_ids"]) for t in texts}) > 1  # the batch is padded
    batches = batches_for(lm, ds.examples, 48, 8)
    means = collect_mean_outputs(lm, batches)
    plain = logits_for(lm, batches, len(texts))
    for mode in ("uniform", "zero", "mean"):
        got = logits_for(lm, batches, len(texts), Intervention(head_modes={1: {2: mode}}, mean_outputs=means))
        want = _reference_logits(out, texts, 1, 2, mode).numpy()
        np.testing.assert_allclose(got, want, atol=2e-5, err_msg=mode)
        assert np.abs(got - plain).max() > 1e-3, mode  # the edit matters


def load_model_classifier(folder: Path):  # noqa: ANN201
    from bertsecrets_cli.model.load import load_model

    return load_model(str(folder), device="cpu", task_head=True)


@pytest.mark.slow
@covers("ablate", "--mode", "--importance", "--greedy", "--greedy-steps")
@pytest.mark.parametrize("mode", ["uniform", "zero", "mean"])
def test_ablate_metric_task_on_a_fine_tuned_decoder_in_every_mode(mode, gpt2_classifier, tmp_path) -> None:
    """Every single head and layer of the GPT-2 classifier, gradient importance (autograd of the task's cross-entropy
    through gated c_proj inputs of GPT-2's own model) and a greedy path whose first step is the best single head."""
    from bertsecrets_cli.analysis.ablation import normalise_importance
    from bertsecrets_cli.jobs.evaluate import batches_for, labels_of
    from bertsecrets_cli.jobs.extract import DataOptions, load_examples
    from bertsecrets_cli.model.attention import Intervention, logits_for

    folder, _ = gpt2_classifier
    out = tmp_path / "abl.h5"
    res = runner.invoke(app, ["ablate", "-m", str(folder), "-n", "8", "--mode", mode, "--importance", "--greedy", "--greedy-steps", "2",
                              "--bootstrap", "50", "--max-length", "48", "--device", "cpu", "-q", "-o", str(out)])
    assert res.exit_code == 0, res.stderr
    r = read_ablation(out)
    assert r.task == "sst2" and r.mode == mode and r.kinds.count("head") == 8 and r.kinds.count("layer") == 2
    # every variant's predictions are those of the model under that variant's edit (the same intervention as above)
    lm = load_model_classifier(folder)
    _, ds = load_examples(DataOptions(task="sst2", limit=8))
    batches = batches_for(lm, ds.examples, 48, 32)
    from bertsecrets_cli.model.sweep import collect_mean_outputs

    means = collect_mean_outputs(lm, batches) if mode == "mean" else {}
    for j in (0, 5, 8):
        heads = {}
        for l, h in zip(*np.nonzero(r.masks[j])):
            heads.setdefault(int(l), {})[int(h)] = mode
        logits = logits_for(lm, batches, len(ds.examples), Intervention(head_modes=heads, mean_outputs=means))
        np.testing.assert_array_equal(r.predictions[j], logits.argmax(-1), err_msg=r.names[j])
    # greedy: higher accuracy is better; the first pick is the single head with the best score (ties: the first)
    heads = [j for j, k in enumerate(r.kinds) if k == "head"]
    best = max(heads, key=lambda j: (r.metrics[j, 0], -j))
    if r.metrics[best, 0] > r.base_metrics[0]:
        assert r.greedy.heads[0] == r.names[best] and r.greedy.gain[0] > 0
    else:
        assert r.greedy.heads == [] and "improves" in r.greedy.stopped
    np.testing.assert_allclose(np.sqrt((r.importance**2).sum(1)), 1.0)  # normalised per layer
    if mode != "uniform":  # the gradient is taken at gates = 1, whatever the mode: checked once
        return
    # importance: |d summed cross-entropy / d gate| / examples, gates on c_proj's input slices of GPT-2's own model
    from transformers import AutoModelForSequenceClassification

    ref = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager").eval()
    gates = torch.ones(2, 4, requires_grad=True)
    hooks = [ref.transformer.h[l].attn.c_proj.register_forward_pre_hook(
        lambda _m, a, l=l: ((a[0].view(*a[0].shape[:-1], 4, HEAD_DIM) * gates[l][:, None]).view(a[0].shape),)) for l in range(2)]
    y = torch.tensor(labels_of(None, ds.examples).astype(np.int64))
    tok = lm.tokenizer
    total = sum(torch.nn.functional.cross_entropy(ref(input_ids=tok(e.text_a, return_tensors="pt", truncation=True, max_length=48)["input_ids"]).logits,
                                                  y[i : i + 1], reduction="sum") for i, e in enumerate(ds.examples))
    for hk in hooks:
        hk.remove()
    (grad,) = torch.autograd.grad(total, gates)
    want = grad.abs().double().numpy() / len(ds.examples)  # one batch: one absolute value
    np.testing.assert_allclose(r.importance_raw, want, rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(r.importance, normalise_importance(want), rtol=1e-3, atol=1e-6)


def test_a_llama_classifier_pads_with_its_end_of_sequence_token_and_reads_the_last_real_token(lms) -> None:
    """Llama's tokenizer has no padding token: loading its classifier makes the end-of-sequence token the padding id
    (config and tokenizer), and a right- or left-padded batch gives the logits of each text run alone."""
    from transformers import AutoModelForSequenceClassification

    from bertsecrets_cli.model.attention import model_logits
    from bertsecrets_cli.model.tokenize import collate, encode_examples

    folder = lms["llama"][0]
    torch.manual_seed(0)
    lm = load_model_classifier(folder)
    assert lm.tokenizer.pad_token_id == lm.tokenizer.eos_token_id == lm.model.config.pad_token_id
    assert lm.notes and "end-of-sequence token '</s>'" in lm.notes[0]
    texts = ["The cat sat.", "A much longer sentence, so that the first one is padded."]
    enc = encode_examples(lm.tokenizer, [(t, None) for t in texts], 48)
    right = collate(enc, lm.tokenizer.pad_token_id, lm.device, lm.token_types)
    ids, mask = right["input_ids"], right["attention_mask"]
    n, T = mask.sum(-1), ids.shape[1]
    order = (torch.arange(T)[None, :] - (T - n)[:, None]) % T  # the real tokens moved to the end
    left = {"input_ids": ids.gather(1, order), "attention_mask": mask.gather(1, order)}
    left["position_ids"] = (left["attention_mask"].cumsum(-1) - 1).clamp_min(0)
    ref = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2, attn_implementation="eager").eval()
    ref.score.load_state_dict(lm.model.score.state_dict())  # the same fresh head
    with torch.inference_mode():
        alone = torch.cat([ref(input_ids=torch.tensor(e.ids[None], dtype=torch.long)).logits for e in enc])
        for batch in (right, left):
            torch.testing.assert_close(model_logits(lm.model, batch), alone, atol=1e-5, rtol=1e-4)
