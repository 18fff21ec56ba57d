"""Attention given to tokens of interest, per head (Kovaleva et al. 2019, sec. 4.4).

Per example and head: the mean over all query rows of the attention to the token (a column mean over the
real tokens); with several such tokens in an example (two [SEP]s, several commas, two negations) the largest
is taken; examples without the token are skipped (NaN here, left out of the mean over examples).
A negation word split into word pieces ("didn't" -> didn ' t) counts as one token: its pieces' columns are
summed first, so the word gets all the attention its pieces get.
"""

from __future__ import annotations

import numpy as np

from bertsecrets_cli.tokens import CLS, NORMAL, SEP, is_punctuation_token

# the paper's list of 17 negation words (sec. 4.4)
NEGATION_WORDS = ("neither", "nor", "not", "never", "none", "don't", "won't", "didn't", "hadn't", "haven't", "can't",
                  "isn't", "wasn't", "shouldn't", "couldn't", "nothing", "nowhere")
TOKEN_FEATURES = ("cls", "sep", "punct", "negation")
TOKEN_FEATURE_LABELS = {"cls": "[CLS]", "sep": "[SEP]", "punct": "punctuation", "negation": "negation"}
TOKEN_FEATURE_DESCRIPTIONS = {
    "cls": "mean attention given to [CLS] (column mean over all tokens, mean over examples)",
    "sep": "mean attention given to [SEP] (the larger of the [SEP]s per example)",
    "punct": "mean attention given to punctuation (the most attended punctuation token per example; examples without any skipped)",
    "negation": "mean attention given to a negation word of the paper's 17 (the most attended per example; examples without one skipped)",
}

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u02bc": "'"})


def _core(piece: str) -> str:
    """A word piece without WordPiece/BPE/SentencePiece markers, lower-cased, with one kind of apostrophe."""
    return piece.removeprefix("##").lstrip("\u0120\u2581").lower().translate(_APOSTROPHES)


def words(tokens: list[str], offsets: np.ndarray, special: np.ndarray, type_ids: np.ndarray) -> list[tuple[str, list[int]]]:
    """Group ordinary word pieces into words: pieces of one sentence whose character spans touch.

    Leading and trailing punctuation pieces are cut off ('not,' -> not), so a word's pieces are its letters.
    Returns (word, piece indices) pairs.
    """
    out: list[tuple[str, list[int]]] = []
    group: list[int] = []

    def close() -> None:
        g = list(group)
        while g and is_punctuation_token(tokens[g[0]]):
            g.pop(0)
        while g and is_punctuation_token(tokens[g[-1]]):
            g.pop()
        if g:
            out.append(("".join(_core(tokens[i]) for i in g), g))

    for i in range(len(tokens)):
        if special[i] != NORMAL:
            close()
            group = []
            continue
        if group and (type_ids[i] != type_ids[group[-1]] or offsets[i][0] != offsets[group[-1]][1]):
            close()
            group = []
        group.append(i)
    close()
    return out


def token_groups(tokens: list[str], offsets: np.ndarray, special: np.ndarray, type_ids: np.ndarray) -> dict[str, list[list[int]]]:
    """Token positions of each feature of TOKEN_FEATURES; each inner list is one token (a word's pieces)."""
    special = np.asarray(special)
    negation = set(NEGATION_WORDS)
    return {
        "cls": [[int(i)] for i in np.flatnonzero(special == CLS)],
        "sep": [[int(i)] for i in np.flatnonzero(special == SEP)],
        "punct": [[i] for i, t in enumerate(tokens) if special[i] == NORMAL and is_punctuation_token(t)],
        "negation": [g for w, g in words(tokens, offsets, special, type_ids) if w in negation],
    }


def token_attention(att: np.ndarray, groups: dict[str, list[list[int]]]) -> np.ndarray:
    """att [..., T, T] of one example -> [..., len(TOKEN_FEATURES)]: attention given to each feature's token.

    NaN where the example has no such token.
    """
    col = np.asarray(att, dtype=np.float32).mean(-2)  # [..., T]: mean attention each key receives
    out = np.full((*col.shape[:-1], len(TOKEN_FEATURES)), np.nan, dtype=np.float32)
    for k, name in enumerate(TOKEN_FEATURES):
        gs = groups.get(name) or []
        if gs:
            out[..., k] = np.stack([col[..., g].sum(-1) for g in gs], -1).max(-1)
    return out
