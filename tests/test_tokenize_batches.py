"""Batch tokenising gives exactly what tokenising one example at a time gave (ids, segments, kinds, offsets, pieces, punctuation)."""

from __future__ import annotations

import numpy as np
import pytest

from bertsecrets_cli.model.tokenize import CLS, NORMAL, OTHER_SPECIAL, SEP, encode_examples, is_punctuation_token


def _one_at_a_time(tokenizer, a: str, b: str | None, max_length: int, truncation: str) -> dict:
    """The per-example reference (the implementation before batching), token by token in Python."""
    enc = tokenizer(a, b, truncation=truncation if b is not None else True, max_length=max_length, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    seq = enc.sequence_ids()
    special = []
    offsets = enc["offset_mapping"]
    for i, t in enumerate(ids):
        unknown_text = t == tokenizer.unk_token_id and offsets[i][1] > offsets[i][0]  # [UNK] stands for text: a word (issue 25)
        if seq[i] is None or (t in set(tokenizer.all_special_ids) and not unknown_text):
            special.append(CLS if t == tokenizer.cls_token_id else SEP if t == tokenizer.sep_token_id else OTHER_SPECIAL)
        else:
            special.append(NORMAL)
    types = np.maximum.accumulate([1 if s == 1 else 0 for s in seq])
    tokens = tokenizer.convert_ids_to_tokens(ids)
    punct = [is_punctuation_token(t) and k == NORMAL for t, k in zip(tokens, special)]
    return {"ids": ids, "special": special, "types": types.tolist(), "offsets": [list(o) for o in enc["offset_mapping"]], "tokens": tokens, "punct": punct}


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from bertsecrets_cli.model.load import embedded_model_dir

    return AutoTokenizer.from_pretrained(embedded_model_dir())


@pytest.mark.parametrize("truncation", ["longest_first", "only_second", "only_first"])
def test_batches_equal_the_per_example_reference(tokenizer, truncation: str) -> None:
    from bertsecrets_cli.data.sources import load_dataset
    from bertsecrets_cli.data.tasks import get_task

    single = load_dataset(get_task("sst2"), None, "dev").examples[:60]
    pair = load_dataset(get_task("mrpc"), None, "dev").examples[:60]
    # singles and pairs interleaved in one call
    pairs: list[tuple[str, str | None]] = [p for s, d in zip(single, pair) for p in ((s.text_a, None), (d.text_a, d.text_b))]
    # special tokens typed in the text, an unknown character, punctuation runs, an empty second sentence, mixed kinds
    pairs += [("He said [SEP] and [UNK] then 字... !?", None), ("x", ""), ("Well... (yes) -- no!", "Okay; fine, [CLS] it's 'done'.")]
    max_length = 24 if truncation != "only_first" else 48
    try:
        got = encode_examples(tokenizer, pairs, max_length, truncation)
    except Exception as e:  # noqa: BLE001 - only_first may be impossible for some pair: the reference must refuse it too
        with pytest.raises(type(e)):
            for a, b in pairs:
                _one_at_a_time(tokenizer, a, b, max_length, truncation)
        return
    assert len(got) == len(pairs)
    for e, (a, b) in zip(got, pairs):
        ref = _one_at_a_time(tokenizer, a, b, max_length, truncation)
        assert e.ids.tolist() == ref["ids"] and e.ids.dtype == np.int32
        assert e.special.tolist() == ref["special"] and e.special.dtype == np.int8
        assert e.type_ids.tolist() == ref["types"] and e.type_ids.dtype == np.int8
        assert e.offsets.tolist() == ref["offsets"] and e.offsets.dtype == np.int32
        assert e.tokens == ref["tokens"]
        assert e.punct.tolist() == ref["punct"]
    typed = got[-3]  # "He said [SEP] and [UNK] then 字... !?": a typed [SEP] is special, an [UNK] (typed or for 字) is text
    assert typed.special[typed.tokens.index("[SEP]")] == SEP and [k for t, k in zip(typed.tokens, typed.special) if t == "[UNK]"] == [NORMAL, NORMAL]
    assert any(e.punct.any() for e in got) and any(e.type_ids.any() for e in got)


def test_chunked_batches_keep_the_input_order(tokenizer) -> None:
    pairs = [(f"sentence number {i} " + "word " * (i % 7), None if i % 3 else f"second {i}") for i in range(50)]
    whole = encode_examples(tokenizer, pairs, 32)
    chunked = encode_examples(tokenizer, pairs, 32, chunk=4)
    assert [e.ids.tolist() for e in whole] == [e.ids.tolist() for e in chunked]
    assert [e.tokens[1] for e in whole] == ["sentence"] * 50 and whole[0].type_ids.any() and not whole[1].type_ids.any()
