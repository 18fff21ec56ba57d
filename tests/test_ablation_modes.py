"""Each ablation mode does what it claims: checked against attention edited by hand.

The reference is independent of our attention function: a stock transformers model loaded with
``attn_implementation="eager"`` whose self-output layer gets a forward pre-hook that rewrites the
disabled head's slice of the context (zero; the head's mean over real tokens; for uniform, the
mean of the head's value vectors over the real tokens, which is what 1/L attention produces).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import strengthen

MODES = ("uniform", "zero", "mean")
SETS = [[(0, 1)], [(1, 3)], [(0, 2), (1, 0)], [(1, h) for h in range(4)]]


@pytest.fixture(scope="module")
def setup(tiny_model_factory):
    from transformers import AutoModelForSequenceClassification

    from bertsecrets_cli.data.sources import Example
    from bertsecrets_cli.jobs.evaluate import batches_for
    from bertsecrets_cli.model.load import load_model

    path = tiny_model_factory("bert", classifier=True)
    lm = load_model(str(path), device="cpu", task_head=True)
    strengthen(lm.model)
    ref = AutoModelForSequenceClassification.from_pretrained(path, attn_implementation="eager").eval()
    ref.load_state_dict(lm.model.state_dict())
    texts = ["a fine film", "the plot is thin but the acting carries every scene of it", "no", "it was , frankly , dull and too long"]
    examples = [Example(f"e{i}", t, None, i % 2) for i, t in enumerate(texts)]
    batches = batches_for(lm, examples, 64, 3)  # lengths differ: padding inside a batch
    return lm, ref, batches, len(examples)


def _reference_logits(ref: torch.nn.Module, batches, n: int, heads: list[tuple[int, int]], mode: str) -> np.ndarray:
    """Logits of the eager model with the heads' context slices rewritten by pre-hooks."""
    cfg = ref.config
    d = cfg.hidden_size // cfg.num_attention_heads
    layers = ref.bert.encoder.layer
    state: dict = {}

    def means() -> dict:
        """Each head's context vector averaged over the real tokens of all batches (unedited model)."""
        sums = {l: torch.zeros(cfg.hidden_size, dtype=torch.float64) for l in range(len(layers))}
        count = 0.0

        def grab(l):
            def pre(module, args):
                real = state["real"].to(args[0].dtype)[..., None]
                sums[l] += (args[0] * real).sum((0, 1)).double()
            return pre

        hs = [layers[l].attention.output.register_forward_pre_hook(grab(l)) for l in range(len(layers))]
        with torch.no_grad():
            for _, batch in batches:
                state["real"] = batch["attention_mask"].bool()
                ref(**batch)
                count += float(batch["attention_mask"].sum())
        for h in hs:
            h.remove()
        return {l: (s / count).float() for l, s in sums.items()}

    mean_vec = means() if mode == "mean" else None

    def edit(l: int, hs: list[int]):
        def pre(module, args):
            ctx, layer_input = args[0].clone(), args[1]
            real = state["real"]
            for h in hs:
                sl = slice(h * d, (h + 1) * d)
                if mode == "zero":
                    ctx[..., sl] = 0.0
                elif mode == "mean":
                    ctx[..., sl] = mean_vec[l][sl]
                else:  # uniform attention over the real tokens = mean of their value vectors
                    v = layers[l].attention.self.value(layer_input)[..., sl]
                    w = real.to(v.dtype)[..., None]
                    ctx[..., sl] = ((v * w).sum(1) / w.sum(1))[:, None, :]
            return (ctx, layer_input)
        return pre

    by_layer: dict[int, list[int]] = {}
    for l, h in heads:
        by_layer.setdefault(l, []).append(h)
    handles = [layers[l].attention.output.register_forward_pre_hook(edit(l, hs)) for l, hs in by_layer.items()]
    out = np.zeros((n, cfg.num_labels), dtype=np.float32)
    try:
        with torch.no_grad():
            for idx, batch in batches:
                state["real"] = batch["attention_mask"].bool()
                out[idx] = ref(**batch).logits.numpy()
    finally:
        for h in handles:
            h.remove()
    return out


def _modes(heads, mode):
    out: dict = {}
    for l, h in heads:
        out.setdefault(l, {})[h] = mode
    return out


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_matches_attention_edited_by_hand(setup, mode):
    from bertsecrets_cli.model.sweep import collect_mean_outputs, sweep_logits

    lm, ref, batches, n = setup
    means = collect_mean_outputs(lm, batches) if mode == "mean" else None
    variants = [_modes(s, mode) for s in SETS]
    fast = sweep_logits(lm, batches, n, variants, mean_outputs=means, engine="fast")
    naive = sweep_logits(lm, batches, n, variants, mean_outputs=means, engine="naive")
    assert fast.engine == "fast" and naive.engine == "naive"
    for j, heads in enumerate(SETS):
        expected = _reference_logits(ref, batches, n, heads, mode)
        assert np.abs(expected - fast.base).max() > 1e-2, "the edit must change the logits, or this test proves nothing"
        np.testing.assert_allclose(naive.variants[j], expected, atol=2e-5, err_msg=f"naive {mode} {heads}")
        np.testing.assert_allclose(fast.variants[j], expected, atol=2e-5, err_msg=f"fast {mode} {heads}")


def test_disabling_nothing_equals_the_baseline_exactly(setup):
    from bertsecrets_cli.model.attention import logits_for
    from bertsecrets_cli.model.sweep import sweep_logits

    lm, _, batches, n = setup
    plain = logits_for(lm, batches, n)
    for engine in ("fast", "naive"):
        out = sweep_logits(lm, batches, n, [{}, {0: {1: "zero"}}], engine=engine)
        assert np.array_equal(out.base, plain), engine
        assert np.array_equal(out.variants[0], plain), engine
        assert not np.allclose(out.variants[1], plain)


def test_uniform_head_on_one_token_input_is_a_no_op(setup):
    """One real token: the softmax already puts all weight on it, so 1/L attention changes nothing."""
    from bertsecrets_cli.model.sweep import sweep_logits

    lm, _, _, _ = setup
    cls, pad = lm.tokenizer.cls_token_id, lm.tokenizer.pad_token_id
    alone = {"input_ids": torch.tensor([[cls]]), "attention_mask": torch.tensor([[1]]), "token_type_ids": torch.zeros(1, 1, dtype=torch.long)}
    # the same one-token input padded next to a longer one: pad keys must not count as real
    longer = lm.tokenizer("a much longer input sentence", return_tensors="pt")
    T = longer["input_ids"].shape[1]
    padded = {
        "input_ids": torch.cat([torch.tensor([[cls] + [pad] * (T - 1)]), longer["input_ids"]]),
        "attention_mask": torch.cat([torch.tensor([[1] + [0] * (T - 1)]), longer["attention_mask"]]),
        "token_type_ids": torch.zeros(2, T, dtype=torch.long),
    }
    every_head = {l: {h: "uniform" for h in range(lm.n_heads)} for l in range(lm.n_layers)}
    for engine in ("fast", "naive"):
        out = sweep_logits(lm, [([0], alone)], 1, [every_head, {0: {2: "uniform"}}], engine=engine)
        np.testing.assert_allclose(out.variants[0], out.base, atol=1e-6)
        np.testing.assert_allclose(out.variants[1], out.base, atol=1e-6)
        out2 = sweep_logits(lm, [([0, 1], padded)], 2, [every_head], engine=engine)
        np.testing.assert_allclose(out2.variants[0][0], out.base[0], atol=1e-5)
        assert np.abs(out2.variants[0][1] - out2.base[1]).max() > 1e-3  # the longer input does change


def test_zero_mode_on_the_naive_path_zeroes_the_head_output(setup):
    """'zero' sets the head's probabilities to 0, so its output (what on_head_output sees) is exactly 0."""
    from bertsecrets_cli.model.attention import Intervention, intervene

    lm, _, batches, _ = setup
    seen = {}
    iv = Intervention(head_modes={1: {2: "zero"}}, on_head_output=lambda l, out, real: seen.__setitem__(l, out.clone()))
    with torch.inference_mode(), intervene(iv):
        lm.model(**batches[0][1])
    assert torch.count_nonzero(seen[1][:, 2]) == 0
    assert torch.count_nonzero(seen[1][:, 1]) > 0
