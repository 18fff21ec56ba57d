"""Models: every family loads and yields one map per layer; padding never leaks; interventions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bertsecrets_cli.errors import InputError, ModelError
from bertsecrets_cli.model.attention import Intervention, forward_with_attention
from bertsecrets_cli.model.device import resolve_device
from bertsecrets_cli.model.load import load_model
from bertsecrets_cli.model.tokenize import collate, encode_examples, is_punctuation_token

from conftest import ALL_FAMILIES, FAMILIES


def _attention(lm, pairs):
    enc = encode_examples(lm.tokenizer, pairs, 64)
    batch = collate(enc, lm.tokenizer.pad_token_id, lm.device, lm.token_types)
    _, probs = forward_with_attention(lm.model, batch, lm.n_layers)
    return enc, probs


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_gives_one_normalised_map_per_layer(family, tiny_model_factory) -> None:
    lm = load_model(str(tiny_model_factory(family)), device="cpu")
    assert (lm.n_layers, lm.n_heads, lm.model_type) == (2, 4, family)
    enc, probs = _attention(lm, [("A short one.", None), ("A much longer sentence than the first one here.", "With a pair.")])
    assert probs.shape[:3] == (2, 2, 4)
    torch.testing.assert_close(probs.sum(-1), torch.ones_like(probs.sum(-1)))


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_padding_never_leaks_into_attention(family, tiny_model_factory) -> None:
    lm = load_model(str(tiny_model_factory(family)), device="cpu")
    alone_enc, alone = _attention(lm, [("The cat sat on the mat.", None)])
    _, batch = _attention(lm, [("The cat sat on the mat.", None), ("This second sentence is far longer, so the first one gets padded a lot.", None)])
    T = alone_enc[0].length
    assert batch.shape[-1] > T
    assert (batch[0, :, :, :T, T:].abs().max()) == 0  # no mass on pads
    assert (batch[0, :, :, :T, :T] - alone[0]).abs().max() < 1e-5


def test_embedded_model_padding_invariance() -> None:
    lm = load_model(None, device="cpu")
    enc, alone = _attention(lm, [("Nothing about this film worked.", None)])
    _, both = _attention(lm, [("Nothing about this film worked.", None), ("A long, long sentence that forces padding onto the first example of the batch.", None)])
    T = enc[0].length
    assert float((both[0, :, :, :T, :T] - alone[0]).abs().max()) < 1e-5


def test_uniform_and_zero_modes_edit_only_the_chosen_head(tiny_model_factory) -> None:
    lm = load_model(str(tiny_model_factory("bert")), device="cpu")
    enc = encode_examples(lm.tokenizer, [("One two three.", None), ("One two three four five six seven.", None)], 64)
    batch = collate(enc, lm.tokenizer.pad_token_id, lm.device, lm.token_types)
    _, base = forward_with_attention(lm.model, batch, lm.n_layers)
    iv = Intervention().disable(1, 2, "uniform").disable(0, 3, "zero")
    _, probs = forward_with_attention(lm.model, batch, lm.n_layers, iv)
    T0 = enc[0].length
    torch.testing.assert_close(probs[0, 1, 2, :T0, :T0], torch.full((T0, T0), 1 / T0))
    assert float(probs[0, 1, 2, :, T0:].abs().max()) == 0
    assert float(probs[:, 0, 3].abs().max()) == 0
    torch.testing.assert_close(probs[:, 0, :3], base[:, 0, :3])  # layer 0's other heads unchanged


def test_device_and_model_errors_are_one_line() -> None:
    assert str(resolve_device("cpu")) == "cpu"
    with pytest.raises(InputError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ModelError, match="hf download"):
        load_model("no-such-owner/no-such-model-xyz", device="cpu")
    with pytest.raises(InputError, match="no such folder"):
        load_model("./no/such/dir", device="cpu")


def test_punctuation_tokens_are_recognised_across_tokenizer_styles() -> None:
    assert is_punctuation_token(",") and is_punctuation_token("##.") and is_punctuation_token("Ġ!")
    assert not is_punctuation_token("cat") and not is_punctuation_token("##s") and not is_punctuation_token("")


def test_pair_segments_are_recorded(tiny_model_factory) -> None:
    lm = load_model(str(tiny_model_factory("bert")), device="cpu")
    (e,) = encode_examples(lm.tokenizer, [("first part", "second part")], 64)
    assert e.type_ids.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert np.count_nonzero(e.special) == 3


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_our_attention_is_transformers_eager_bit_for_bit(family, tiny_model_factory) -> None:
    """The in-place scaling and masking in attention_function must not move a single bit of the maps or outputs."""
    from transformers import AutoModel

    lm = load_model(str(tiny_model_factory(family)), device="cpu")
    ref = AutoModel.from_pretrained(str(tiny_model_factory(family)), attn_implementation="eager").eval()
    enc = encode_examples(lm.tokenizer, [("A short one.", None), ("A much longer sentence than the first one, padded less.", "With a pair.")], 64)
    batch = collate(enc, lm.tokenizer.pad_token_id, lm.device, lm.token_types)
    out, probs = forward_with_attention(lm.model, batch, lm.n_layers)
    with torch.inference_mode():
        want = ref(**batch, output_attentions=True)
    assert len(want.attentions) == lm.n_layers
    assert torch.equal(probs, torch.stack(want.attentions, dim=1))
    assert torch.equal(out.last_hidden_state, want.last_hidden_state)
