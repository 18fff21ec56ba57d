"""Norm-based attention, rollout and flow are what the papers define: checked against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import FAMILIES


def _load(path):  # noqa: ANN001, ANN202
    from bertsecrets_cli.model.load import load_model

    return load_model(str(path), device="cpu")


def _layer_params(model, family: str, layer: int) -> dict[str, torch.Tensor]:  # noqa: ANN001
    """Query, key, value and output projections of one layer, read straight off the modules by their names."""
    if family == "distilbert":
        a = model.transformer.layer[layer].attention
        q, k, v, o = a.q_lin, a.k_lin, a.v_lin, a.out_lin
    else:
        a = model.encoder.layer[layer].attention
        q, k, v, o = a.self.query, a.self.key, a.self.value, a.output.dense
    return {"q": q, "k": k, "v": v, "o": o}


def independent_norms(lm, family: str, batch: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """(weights, ||alpha_ij (x_j W_V + b_V)_h W_O[:, h]^T||) [B, L, H, T, T] from hidden states and parameters only."""
    with torch.no_grad():
        out = lm.model(**batch, output_hidden_states=True)
    hs = out.hidden_states
    mask = batch["attention_mask"].bool()
    H = lm.n_heads
    weights, norms = [], []
    for layer in range(lm.n_layers):
        x = hs[layer]  # the layer's input
        p = _layer_params(lm.model, family, layer)
        B, T, D = x.shape
        d = D // H
        with torch.no_grad():
            q = p["q"](x).view(B, T, H, d).transpose(1, 2)
            k = p["k"](x).view(B, T, H, d).transpose(1, 2)
            v = p["v"](x).view(B, T, H, d).transpose(1, 2)  # b_V included
            s = q @ k.transpose(-1, -2) / d**0.5
            s = s.masked_fill(~mask[:, None, None, :], float("-inf"))
            alpha = torch.softmax(s, -1)
            Wo = p["o"].weight  # [D, H*d]; the output bias is left out
            fx = torch.stack([v[:, h] @ Wo[:, h * d : (h + 1) * d].T for h in range(H)], 1)  # [B, H, T, D]
            n = alpha * fx.norm(dim=-1)[:, :, None, :]
        weights.append(alpha.numpy())
        norms.append(n.numpy())
    return np.stack(weights, 1), np.stack(norms, 1)


def _batch(lm, texts):  # noqa: ANN001, ANN202
    from bertsecrets_cli.model.tokenize import collate, encode_examples

    enc = encode_examples(lm.tokenizer, [(t, None) for t in texts], 32)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    return enc, collate(enc, pad, lm.device, lm.model_type)


TEXTS = ["the film was a delight .", "no ."]


@pytest.mark.parametrize("family", FAMILIES)
def test_norms_equal_an_independent_computation_from_the_parameters(family: str, tiny_model_factory) -> None:
    from bertsecrets_cli.model.attention import forward_with_norms

    lm = _load(tiny_model_factory(family))
    enc, batch = _batch(lm, TEXTS)
    _, probs, norms = forward_with_norms(lm.model, batch, lm.n_layers)
    w_ref, n_ref = independent_norms(lm, family, batch)
    for j, e in enumerate(enc):  # real rows and keys only: padded query rows are garbage for both
        T = e.length
        np.testing.assert_allclose(probs[j, :, :, :T, :T].numpy(), w_ref[j, :, :, :T, :T], atol=1e-5)
        np.testing.assert_allclose(norms[j, :, :, :T, :T].numpy(), n_ref[j, :, :, :T, :T], rtol=1e-4, atol=1e-6)
    assert float(norms[1, :, :, :, enc[1].length :].abs().max()) == 0.0  # padded keys carry no norm
    # the norm is not the weight: the two orders of the keys differ somewhere
    assert not np.allclose(norms[0].numpy() / norms[0].numpy().sum(-1, keepdims=True), probs[0].numpy(), atol=1e-3)


def test_norms_are_padding_invariant_and_deterministic(tiny_model_factory) -> None:
    from bertsecrets_cli.model.attention import forward_with_norms

    lm = _load(tiny_model_factory("bert"))
    enc_alone, alone = _batch(lm, ["no ."])
    enc_pad, padded = _batch(lm, ["no .", "a much longer sentence that forces padding of the first one ."])
    T = enc_alone[0].length
    _, _, n1 = forward_with_norms(lm.model, alone, lm.n_layers)
    _, _, n2 = forward_with_norms(lm.model, padded, lm.n_layers)
    _, _, n3 = forward_with_norms(lm.model, padded, lm.n_layers)
    assert n2.shape[-1] > T
    np.testing.assert_allclose(n1[0].numpy(), n2[0, :, :, :T, :T].numpy(), atol=1e-6)
    assert torch.equal(n2, n3)


def test_a_head_with_zero_value_vectors_has_zero_norms_and_zero_normalised_rows(tiny_model_factory) -> None:
    from bertsecrets_cli.jobs.quantities import batch_extras
    from bertsecrets_cli.model.attention import forward_with_norms

    lm = _load(tiny_model_factory("bert"))
    d = lm.model.config.hidden_size // lm.n_heads
    v = _layer_params(lm.model, "bert", 0)["v"]
    with torch.no_grad():
        v.weight[d : 2 * d] = 0.0  # head 2 of layer 1
        v.bias[d : 2 * d] = 0.0
    enc, batch = _batch(lm, TEXTS)
    _, probs, norms = forward_with_norms(lm.model, batch, lm.n_layers)
    assert float(norms[:, 0, 1].abs().max()) == 0.0
    assert float(norms[:, 0, 0].abs().max()) > 0.0 and float(probs[:, 0, 1].max()) > 0.0  # weights are untouched
    extras = batch_extras(probs, norms, enc, ["norms", "norms_normalised"])
    for e, ex in zip(enc, extras):
        maps, stats = ex["norms_normalised"]
        assert np.all(maps[0, 1] == 0.0) and np.all(np.isfinite(maps))
        np.testing.assert_allclose(maps[0, 0].sum(-1), 1.0, atol=1e-5)
        assert np.isfinite(stats[0, 0, 1])  # other heads' statistics are defined
        assert stats[0, 1, 1] == 0.0  # no mass anywhere, including [CLS]


def test_rollout_is_the_product_of_residual_attention_and_flow_starts_there() -> None:
    from bertsecrets_cli.analysis.quantities import flow, residual_attention, rollout

    rng = np.random.default_rng(0)
    w = rng.random((3, 2, 5, 5))
    w /= w.sum(-1, keepdims=True)
    a = 0.5 * w.mean(1) + 0.5 * np.eye(5)
    r = rollout(w)
    np.testing.assert_allclose(residual_attention(w), a, atol=1e-12)
    np.testing.assert_allclose(r[0], a[0], atol=1e-6)
    np.testing.assert_allclose(r[2], a[2] @ a[1] @ a[0], atol=1e-6)
    np.testing.assert_allclose(r.sum(-1), 1.0, atol=1e-6)
    f = flow(w)
    np.testing.assert_allclose(f[0], a[0], atol=1e-6)  # one layer: the flow is the edge itself
    # a flow is bounded by the capacity into the sink and by what the source can send
    assert np.all(f[1] <= a[0].sum(0)[None, :] + 1e-6) and np.all(f <= 1 + 1e-6)
    # two layers by hand for one pair: max flow = min(cut) over the paths through layer 1
    i, k = 0, 3
    np.testing.assert_allclose(f[1, i, k], min(sum(np.minimum(a[1][i], a[0][:, k])), a[0][:, k].sum()), atol=1e-6)


def test_rollout_of_identity_attention_stays_identity() -> None:
    from bertsecrets_cli.analysis.quantities import rollout, row_normalise

    w = np.broadcast_to(np.eye(4), (2, 3, 4, 4)).copy()
    np.testing.assert_allclose(rollout(w), np.broadcast_to(np.eye(4), (2, 4, 4)), atol=1e-7)
    z = np.zeros((1, 1, 2, 2))
    assert np.all(row_normalise(z) == 0)
