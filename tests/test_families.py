"""Every encoder family by capability: refusals, ALBERT's shared layers, DeBERTa/MPNet adapters, ModernBERT windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertsecrets_cli.errors import ModelError
from bertsecrets_cli.model.attention import Intervention, forward_with_attention, forward_with_norms, intervene
from bertsecrets_cli.model.load import load_model
from bertsecrets_cli.model.tokenize import collate, encode_examples

from conftest import build_tiny_model

PAIRS = [("The cat sat on the mat.", None), ("A much longer sentence, so that the first one is padded.", "And a pair.")]


def _batch(lm, pairs=PAIRS):  # noqa: ANN001, ANN202
    enc = encode_examples(lm.tokenizer, pairs, 64)
    return enc, collate(enc, lm.tokenizer.pad_token_id, lm.device, lm.token_types)


def _hidden(lm, batch, iv=None):  # noqa: ANN001, ANN202
    with torch.inference_mode():
        if iv is None:
            return lm.model(**batch).last_hidden_state
        with intervene(iv):
            return lm.model(**batch).last_hidden_state


@pytest.mark.parametrize(("family", "says"), [
    ("megatron-bert", "compute attention themselves, not through transformers' attention interface"),
])
def test_a_model_that_cannot_be_intercepted_is_refused_with_what_it_lacks(family, says, tmp_path) -> None:
    folder = build_tiny_model(tmp_path / family, family)
    with pytest.raises(ModelError, match=says) as err:
        load_model(str(folder), device="cpu")
    assert "\n" not in str(err.value) and repr(family) in str(err.value)


def test_albert_shares_one_module_but_each_layer_is_ablated_alone(tiny_model_factory) -> None:
    """ALBERT runs one attention module in every layer: zeroing head 2 of layer 0 must leave layer 1's head 2 alone.

    The reference zeroes head 2's slice of the output projection's input in the first call only (a hook
    counting calls on the shared ``dense``), which is what zeroing its probabilities in layer 0 means.
    """
    lm = load_model(str(tiny_model_factory("albert")), device="cpu")
    shared = {id(m) for m in lm.model.modules() if type(m).__name__ == "AlbertAttention"}
    assert len(shared) == 1 and lm.n_layers == 2  # one module, two layers
    _, batch = _batch(lm)
    d = lm.model.config.hidden_size // lm.n_heads
    dense = next(m for m in lm.model.modules() if type(m).__name__ == "AlbertAttention").dense
    calls = []

    def zero_head_2_first_call(_mod, args):  # noqa: ANN001, ANN202
        calls.append(1)
        if len(calls) == 1:
            x = args[0].clone()
            x[..., 2 * d : 3 * d] = 0
            return (x,)
        return None

    handle = dense.register_forward_pre_hook(zero_head_2_first_call)
    try:
        want = _hidden(lm, batch)
    finally:
        handle.remove()
    assert len(calls) == 2
    got = _hidden(lm, batch, Intervention().disable(0, 2, "zero"))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    both = _hidden(lm, batch, Intervention().disable(0, 2, "zero").disable(1, 2, "zero"))
    assert float((both - got).abs().max()) > 1e-4  # disabling it in layer 1 too is another model
    _, probs = forward_with_attention(lm.model, batch, lm.n_layers, Intervention().disable(0, 2, "zero"))
    assert float(probs[:, 0, 2].abs().max()) == 0 and float(probs[0, 1, 2].sum()) > 0


@pytest.mark.parametrize("family", ["deberta-v2", "mpnet"])
def test_adapted_families_edit_heads_like_every_other(family, tiny_model_factory) -> None:
    """Gates and modes reach DeBERTa's and MPNet's own attention modules; a zero gate equals the zero mode."""
    lm = load_model(str(tiny_model_factory(family)), device="cpu")
    enc, batch = _batch(lm)
    base = _hidden(lm, batch)
    ones = torch.ones(lm.n_layers, lm.n_heads)
    assert torch.equal(_hidden(lm, batch, Intervention(gates=ones)), base)
    gates = ones.clone()
    gates[1, 3] = 0
    zero_gate = _hidden(lm, batch, Intervention(gates=gates))
    zero_mode = _hidden(lm, batch, Intervention().disable(1, 3, "zero"))
    torch.testing.assert_close(zero_gate, zero_mode, rtol=0, atol=1e-6)
    assert float((zero_mode - base).abs().max()) > 1e-4
    _, probs = forward_with_attention(lm.model, batch, lm.n_layers, Intervention().disable(0, 1, "uniform"))
    for j, e in enumerate(enc):
        T = e.length
        torch.testing.assert_close(probs[j, 0, 1, :T, :T], torch.full((T, T), 1 / T))
    mean = {(0, 0): torch.arange(lm.model.config.hidden_size // lm.n_heads, dtype=torch.float32)}
    seen = {}
    iv = Intervention(head_modes={0: {0: "mean"}}, mean_outputs=mean, on_head_output=lambda layer, out, real: seen.setdefault(layer, out))
    _hidden(lm, batch, iv)
    assert torch.equal(seen[0][:, 0], mean[(0, 0)].expand_as(seen[0][:, 0])) and set(seen) == {0, 1}


def _value_and_output(model, family: str, layer: int):  # noqa: ANN001, ANN202
    blk = model.encoder.layer[layer].attention
    if family == "deberta-v2":
        return blk.self.value_proj, blk.output.dense
    return blk.attn.v, blk.attn.o


@pytest.mark.parametrize("family", ["deberta-v2", "mpnet"])
def test_adapted_families_norms_equal_an_independent_computation(family, tiny_model_factory) -> None:
    lm = load_model(str(tiny_model_factory(family)), device="cpu")
    enc, batch = _batch(lm)
    _, probs, norms = forward_with_norms(lm.model, batch, lm.n_layers)
    with torch.no_grad():
        hs = lm.model(**batch, output_hidden_states=True).hidden_states
    H = lm.n_heads
    for layer in range(lm.n_layers):
        v_proj, o = _value_and_output(lm.model, family, layer)
        with torch.no_grad():
            v = v_proj(hs[layer])
            B, T, D = v.shape
            d = D // H
            fx = torch.stack([v[..., h * d : (h + 1) * d] @ o.weight[:, h * d : (h + 1) * d].T for h in range(H)], 1)  # [B, H, T, D]
            want = probs[:, layer] * fx.norm(dim=-1)[:, :, None, :]
        for j, e in enumerate(enc):
            n = e.length
            np.testing.assert_allclose(norms[j, layer, :, :n, :n].numpy(), want[j, :, :n, :n].numpy(), rtol=1e-4, atol=1e-6)


def test_modernbert_local_layer_window_is_found_and_disabling_stays_inside_it(tiny_model_factory) -> None:
    lm = load_model(str(tiny_model_factory("modernbert")), device="cpu")
    assert lm.windows == (-1, 2)  # layer 0 global, layer 1 local with |i - j| <= 2 (local_attention 4)
    enc, batch = _batch(lm)
    _, probs = forward_with_attention(lm.model, batch, lm.n_layers, Intervention().disable(1, 0, "uniform"))
    for j, e in enumerate(enc):
        T = e.length
        i, k = np.meshgrid(np.arange(T), np.arange(T), indexing="ij")
        inside = np.abs(i - k) <= 2
        p = probs[j, 1, :, :T, :T].numpy()
        assert np.all(p[:, ~inside] == 0)  # every head: nothing outside the window
        want = inside / inside.sum(-1, keepdims=True)
        np.testing.assert_allclose(p[0], want, atol=1e-7)  # the disabled head: uniform over its window
        assert np.any(probs[j, 0, :, :T, :T].numpy()[:, ~inside] > 0)  # the global layer attends beyond it


def _column_mass_by_rows(att, cols, window):  # noqa: ANN001, ANN202
    """[H] mean over query rows that have a selected column within ``window`` (-1: all rows) of the mass on them."""
    T = att.shape[-1]
    picked = [i for i in range(T) if window < 0 or any(cols[j] and abs(i - j) <= window for j in range(T))]
    if not picked or not cols.any():
        return np.full(att.shape[0], np.nan)
    return np.array([np.mean([att[h, i, cols].sum() for i in picked]) for h in range(att.shape[0])])


@pytest.mark.parametrize("quantities", [("weights",), ("weights", "norms_normalised")])
def test_modernbert_store_records_windows_and_local_column_means_skip_rows_out_of_reach(quantities, tiny_model_factory, tmp_path) -> None:
    """The store says which layers are local; a local layer's [CLS]/[SEP]/punct means are over the rows that can reach them."""
    from bertsecrets_cli.jobs.extract import DataOptions, ExtractOptions, run_extract
    from bertsecrets_cli.store.reader import open_store
    from bertsecrets_cli.tokens import CLS, NORMAL, SEP, is_punctuation_token

    out = tmp_path / "mb.h5"
    run_extract(ExtractOptions(model=str(tiny_model_factory("modernbert")), data=DataOptions(task="sst2", limit=6), device="cpu",
                               quiet=True, quantities=quantities), out, command="test")
    with open_store(out) as st:
        assert st.attention_windows().tolist() == [-1, 2]
        names, stats = st.stats()
        far = 0
        for i in range(st.n_examples):
            att = st.attention(i).astype(np.float64)
            tok = st.tokens(i)
            punct = np.array([is_punctuation_token(t) for t in tok.text]) & (tok.special == NORMAL)
            T = att.shape[-1]
            far += T > 6
            for k, cols in ((1, tok.special == CLS), (2, tok.special == SEP), (3, punct)):
                for layer, w in enumerate((-1, 2)):
                    np.testing.assert_allclose(stats[i, layer, :, k], _column_mass_by_rows(att[layer], cols, w), rtol=2e-3, atol=1e-3)
        assert far and names[1:4] == ["cls", "sep", "punct"]  # some example has rows that cannot reach [CLS] in the local layer
        if "norms_normalised" in quantities:  # the norm-based maps are 0 outside the window too: the same reading
            nq = st.select_quantity("norms_normalised")
            _, nstats = nq.stats()
            for i in range(st.n_examples):
                att = nq.attention(i).astype(np.float64)
                cls = st.tokens(i).special == CLS
                for layer, w in enumerate((-1, 2)):
                    np.testing.assert_allclose(nstats[i, layer, :, 1], _column_mass_by_rows(att[layer], cls, w), rtol=2e-3, atol=1e-3)


def test_pattern_features_of_a_local_layer_count_only_what_its_rows_can_see() -> None:
    """A local head that puts all it can on [CLS]/[SEP] (the rows within reach) is vertical there, not diluted."""
    from bertsecrets_cli.analysis.patterns import FEATURES, VERTICAL, classify_maps, map_features
    from bertsecrets_cli.tokens import CLS, SEP

    T, w = 16, 2
    special = np.zeros(T, dtype=np.int8)
    special[0], special[-1] = CLS, SEP
    att = np.zeros((T, T), dtype=np.float32)
    for i in range(T):
        if i <= w:
            att[i, 0] = 1.0  # can see [CLS]: all on it
        elif i >= T - 1 - w:
            att[i, T - 1] = 1.0  # can see [SEP]: all on it
        else:
            att[i, i - w] = att[i, i + w] = 0.5  # sees no special token: split between the window's two ends
    maps = np.stack([att, att])  # as layer 0 (global) and layer 1 (local)
    f = map_features(maps[:, None], special, np.zeros(T, dtype=np.int8), windows=[-1, w])
    reach = [i for i in range(T) if i <= w or i >= T - 1 - w]
    assert f[1, 0, FEATURES.index("special")] == pytest.approx(1.0)  # every row that can see one puts all on it
    assert f[0, 0, FEATURES.index("special")] == pytest.approx(len(reach) / T)  # read as global: diluted by the others
    # each row's entropy is scaled by the log of the keys it can see (5 in mid-sentence), not of all 16
    rows = [-(att[i][att[i] > 0] * np.log(att[i][att[i] > 0])).sum() / np.log(min(T, i + w + 1) - max(0, i - w)) for i in range(T)]
    assert f[1, 0, FEATURES.index("entropy")] == pytest.approx(np.mean(rows), rel=1e-5)
    labels, _ = classify_maps(maps[:, None], special, np.zeros(T, dtype=np.int8), windows=[-1, w])
    assert labels[1, 0] == VERTICAL and labels[0, 0] != VERTICAL


def test_a_stop_during_the_capability_probe_is_a_stop_not_a_verdict_on_the_model() -> None:
    """SIGTERM lands as Interrupted (exit 75) wherever it arrives; inside the probe forward pass it must not turn
    into "not an encoder bertsecrets can run" (exit 5): the kill test found it there, during start-up."""
    import torch

    from bertsecrets_cli.errors import Interrupted
    from bertsecrets_cli.model import attention

    class Stopped(torch.nn.Module):
        config = type("C", (), {"vocab_size": 50, "pad_token_id": 0})()

        def forward(self, **_: object) -> None:
            raise Interrupted("stopped by SIGTERM")

    class Broken(Stopped):
        def forward(self, **_: object) -> None:
            raise ValueError("needs decoder_input_ids")

    with pytest.raises(Interrupted):
        attention._probe(Stopped(), 6)
    with pytest.raises(attention.NotInterceptable, match="needs decoder_input_ids"):
        attention._probe(Broken(), 6)
