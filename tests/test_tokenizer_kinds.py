"""Tokenizers of every kind (WordPiece, byte-level BPE, SentencePiece Unigram and BPE): token kinds, word units, [UNK]."""

from __future__ import annotations

import numpy as np
import pytest

from bertsecrets_cli.analysis.wordlevel import example_units
from bertsecrets_cli.model.tokenize import encode_examples
from bertsecrets_cli.tokens import CLS, NORMAL, SEP

from conftest import build_tokenizer

KINDS = [("wordpiece", "bert"), ("bytelevel-bpe", "roberta"), ("bytelevel-bpe", "bert"),
         ("sentencepiece-unigram", "roberta"), ("sentencepiece-unigram", "bert"), ("sentencepiece-bpe", "bert")]


@pytest.fixture(scope="module")
def tokenizers():
    return {k: build_tokenizer(*k) for k in KINDS}


@pytest.mark.parametrize("kind", KINDS, ids=["-".join(k) for k in KINDS])
def test_special_tokens_come_from_the_tokenizer_and_words_from_offsets(kind, tokenizers) -> None:
    tok = tokenizers[kind]
    a, b = "The film was zany, Qxz!", "Nobody enjoyed it."
    (single, pair) = encode_examples(tok, [(a, None), (a, b)], 64)
    cls_text, sep_text = ("[CLS]", "[SEP]") if kind[1] == "bert" else ("<s>", "</s>")
    # the kinds are where the tokenizer put its own classification and separator tokens, nowhere else
    assert single.tokens[0] == cls_text and single.special[0] == CLS
    assert single.tokens[-1] == sep_text and single.special[-1] == SEP
    assert np.all(single.special[1:-1] == NORMAL)
    assert [t for t, k in zip(pair.tokens, pair.special) if k == SEP] == [sep_text] * (2 if kind[1] == "bert" else 3)
    units = example_units(pair.tokens, pair.offsets, pair.special, pair.type_ids, [a, b])
    words_a = ["The", "film", "was", "zany", ",", "Qxz", "!"]
    words_b = ["Nobody", "enjoyed", "it", "."]
    seps = [sep_text] if kind[1] == "bert" else [sep_text, sep_text]
    assert units.texts == [cls_text, *words_a, *seps, *words_b, sep_text]
    assert units.segment.tolist() == [0] * (1 + len(words_a) + 1) + [0] * (len(seps) - 1) + [1] * (len(words_b) + 1)
    # every piece of the text belongs to a word unit; each special token is a unit of its own
    assert np.all(units.assign >= 0)


def test_a_word_the_tokenizer_does_not_know_is_a_word_unit_of_its_own_text(tokenizers) -> None:
    """WordPiece turns the snowman into [UNK]; SentencePiece turns unseen letters into its unknown piece."""
    wp = tokenizers[("wordpiece", "bert")]
    text = "I saw a \u2603 today."
    (e,) = encode_examples(wp, [(text, None)], 64)
    assert "[UNK]" in e.tokens and np.count_nonzero(e.special) == 2  # [CLS] and [SEP] only
    units = example_units(e.tokens, e.offsets, e.special, e.type_ids, [text])
    assert units.texts == ["[CLS]", "I", "saw", "a", "\u2603", "today", ".", "[SEP]"]
    assert units.special[4] == 0
    spm = tokenizers[("sentencepiece-bpe", "bert")]
    (e,) = encode_examples(spm, [("The zany Qxz.", None)], 64)
    unk = [i for i, t in enumerate(e.tokens) if t == "[UNK]"]
    assert unk and np.all(e.special[unk] == NORMAL)
    units = example_units(e.tokens, e.offsets, e.special, e.type_ids, ["The zany Qxz."])
    assert units.texts == ["[CLS]", "The", "zany", "Qxz", ".", "[SEP]"]


def test_an_unknown_token_typed_as_text_and_one_from_the_template_differ(tokenizers) -> None:
    """Only the template's tokens are special: '[UNK]' the tokenizer made up for a character is text."""
    wp = tokenizers[("wordpiece", "bert")]
    (e,) = encode_examples(wp, [("x \u2603 y", "z")], 64)
    kinds = dict(zip(range(len(e.tokens)), e.special.tolist()))
    assert [e.tokens[i] for i, k in kinds.items() if k != NORMAL] == ["[CLS]", "[SEP]", "[SEP]"]


def test_an_unknown_word_keeps_its_piece_in_treebank_word_matrices(tokenizers) -> None:
    """Dependency heads, coref and the probe score treebank words through word_piece_matrix: the [UNK] piece is its word's."""
    from bertsecrets_cli.analysis.wordlevel import word_piece_matrix

    words = ["I", "saw", "\u2603", "today", "."]
    text = " ".join(words)
    spans, pos = [], 0
    for w in words:
        spans.append((pos, pos + len(w)))
        pos += len(w) + 1
    (e,) = encode_examples(tokenizers[("wordpiece", "bert")], [(text, None)], 64)
    M = word_piece_matrix(e.offsets, e.special, spans, text)
    unk = e.tokens.index("[UNK]")
    assert M[2, unk] == 1 and M[2].sum() == 1  # the snowman's row holds its one piece
    assert np.all(M.sum(0)[e.special == NORMAL] == 1) and np.all(M.sum(0)[e.special != NORMAL] == 0)
