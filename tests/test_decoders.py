"""Causal decoder language models (issue 30): GPT-2 and the Llama architecture (Llama, Qwen2/3, Mistral)."""

from __future__ import annotations

import pytest
import torch

from bertsecrets_cli.model.attention import Intervention, forward_with_attention, intervene
from bertsecrets_cli.model.load import load_model
from bertsecrets_cli.model.tokenize import collate, encode_examples

from conftest import DECODER_FAMILIES, DECODER_TOKENIZERS, build_tiny_model, build_tokenizer

PAIRS = [("The cat sat on the mat.", None), ("A much longer sentence, so that the first one is padded at the end.", None)]


@pytest.fixture(scope="module")
def decoder_models(tmp_path_factory: pytest.TempPathFactory):
    """A tiny model of every decoder family, each with a byte-level BPE tokenizer of its family's style."""
    toks = {k: build_tokenizer(*k) for k in set(DECODER_TOKENIZERS.values())}
    root = tmp_path_factory.mktemp("decoders")
    return {f: build_tiny_model(root / f, f, tokenizer=toks[DECODER_TOKENIZERS[f]]) for f in DECODER_FAMILIES}


def _eager(folder):  # noqa: ANN001, ANN202
    from transformers import AutoModel

    m = AutoModel.from_pretrained(folder, attn_implementation="eager")
    m.config.use_cache = False
    return m.eval()


def _padded(lm, side: str):  # noqa: ANN001, ANN202
    enc = encode_examples(lm.tokenizer, PAIRS, 64)
    batch = collate(enc, 0, lm.device, lm.token_types)
    if side == "left":  # real tokens at the end, positions counted from each example's first real token
        ids, mask = batch["input_ids"], batch["attention_mask"]
        n = mask.sum(-1)
        order = (torch.arange(ids.shape[1])[None, :] - (ids.shape[1] - n)[:, None]) % ids.shape[1]
        batch = {"input_ids": ids.gather(1, order), "attention_mask": mask.gather(1, order)}
        batch["position_ids"] = (batch["attention_mask"].cumsum(-1) - 1).clamp_min(0)
    return batch


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("family", DECODER_FAMILIES)
def test_decoder_maps_and_hidden_states_equal_the_familys_eager_output_exactly(family, side, decoder_models) -> None:
    lm = load_model(str(decoder_models[family]), device="cpu")
    assert lm.causal and lm.n_heads == 4 and lm.windows == (-1, -1)
    assert lm.kv_group == ((0, 0, 1, 1) if family != "gpt2" else (0, 1, 2, 3))
    batch = _padded(lm, side)
    out, probs = forward_with_attention(lm.model, batch, lm.n_layers)
    with torch.inference_mode():
        want = _eager(decoder_models[family])(**batch, output_attentions=True)
    assert torch.equal(probs, torch.stack(want.attentions, dim=1))
    assert torch.equal(out.last_hidden_state, want.last_hidden_state)
    # causal: no query of a real token puts mass on a later key
    real = batch["attention_mask"].bool()
    for b in range(probs.shape[0]):
        rows = real[b].nonzero().flatten()
        sub = probs[b][:, :, rows][..., rows]
        assert float(sub[..., torch.triu(torch.ones(len(rows), len(rows), dtype=torch.bool), 1)].abs().max()) == 0.0


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_a_disabled_decoder_head_is_uniform_over_the_prefix_it_may_see_never_the_future(family, decoder_models) -> None:
    lm = load_model(str(decoder_models[family]), device="cpu")
    batch = _padded(lm, "right")
    _, probs = forward_with_attention(lm.model, batch, lm.n_layers, Intervention().disable(1, 2))
    n = int(batch["attention_mask"][0].sum())
    want = torch.tril(torch.ones(n, n)) / torch.arange(1, n + 1, dtype=torch.float32)[:, None]  # row i: 1/(i+1) on keys 0..i
    assert torch.equal(probs[0, 1, 2, :n, :n], want)
    assert n < probs.shape[-1] and float(probs[0, 1, 2, :n, n:].abs().max()) == 0.0  # nor on the padding after it
