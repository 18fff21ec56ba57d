"""Turn examples into model inputs, with the token-level facts the store keeps."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bertsecrets_cli.tokens import CLS, NORMAL, OTHER_SPECIAL, SEP, is_punctuation_token  # noqa: F401 - re-exported for model users


@dataclass
class Encoded:
    """One example's tokens; everything the store keeps per token."""

    ids: np.ndarray  # int32 [T]
    type_ids: np.ndarray  # int8 [T] segment (0 first sentence, 1 second; from sequence ids)
    special: np.ndarray  # int8 [T] NORMAL / CLS / SEP / OTHER_SPECIAL, from the tokenizer's own tokens
    offsets: np.ndarray  # int32 [T, 2] character span in its sentence (special tokens: 0, 0)
    tokens: list[str]
    punct_mask: np.ndarray | None = field(default=None, repr=False)  # bool [T], filled by encode_examples

    @property
    def punct(self) -> np.ndarray:
        """bool [T]: word pieces made only of punctuation (special tokens excluded)."""
        if self.punct_mask is not None:
            return self.punct_mask
        return np.array([is_punctuation_token(t) for t in self.tokens], dtype=bool) & (self.special == NORMAL)

    @property
    def length(self) -> int:
        return len(self.ids)


# tokenizer -> bool [vocabulary]: which ids are punctuation pieces (decided once per vocabulary, not per token)
_PUNCT_TABLES: weakref.WeakKeyDictionary[Any, np.ndarray] = weakref.WeakKeyDictionary()


def punctuation_table(tokenizer: Any) -> np.ndarray:
    """bool [len(tokenizer)]: ``is_punctuation_token`` of every id, computed once per tokenizer."""
    table = _PUNCT_TABLES.get(tokenizer)
    if table is None or len(table) != len(tokenizer):
        table = np.fromiter((is_punctuation_token(t or "") for t in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))), dtype=bool, count=len(tokenizer))
        _PUNCT_TABLES[tokenizer] = table
    return table


def encode_examples(tokenizer: Any, pairs: list[tuple[str, str | None]], max_length: int, truncation: str = "longest_first",
                    chunk: int = 1024) -> list[Encoded]:
    """Tokenise (text_a, text_b) pairs in batches of the fast tokenizer; pairs are truncated by ``truncation``.

    Special tokens are the tokenizer's (its special-tokens mask, plus special ids typed in the text),
    offsets its offset mapping, punctuation a per-vocabulary table: no Python loop over tokens.
    """
    out: list[Encoded | None] = [None] * len(pairs)
    # an empty second text is no second segment (as the tokenizer treats a single call with text_pair="")
    singles = [i for i, (_, b) in enumerate(pairs) if not b]
    doubles = [i for i, (_, b) in enumerate(pairs) if b]
    for group, is_pair in ((singles, False), (doubles, True)):
        for c0 in range(0, len(group), chunk):
            idx = group[c0 : c0 + chunk]
            for i, e in zip(idx, _encode_batch(tokenizer, [pairs[i] for i in idx], is_pair, max_length, truncation)):
                out[i] = e
    return out  # type: ignore[return-value]


def _encode_batch(tokenizer: Any, pairs: list[tuple[str, str | None]], is_pair: bool, max_length: int, truncation: str) -> list[Encoded]:
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    # the unknown token is not special: it stands for a word (or part of one) of the text, with that text's offsets
    all_special = np.asarray(sorted(set(tokenizer.all_special_ids) - {tokenizer.unk_token_id}), dtype=np.int64)
    punct_table = punctuation_table(tokenizer)
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs] if is_pair else None
    # the Rust encodings carry ids, offsets, the special-tokens mask and sequence ids; nothing is converted to lists twice
    enc = tokenizer(a, b, truncation=truncation if is_pair else True, max_length=max_length, return_attention_mask=False, return_token_type_ids=False)
    out = []
    for j, e in enumerate(enc.encodings):
        ids = np.asarray(e.ids, dtype=np.int32)
        offsets = np.asarray(e.offsets, dtype=np.int32).reshape(-1, 2)
        is_special = np.asarray(e.special_tokens_mask, dtype=bool) | np.isin(ids, all_special)
        is_special &= ~((ids == tokenizer.unk_token_id) & (offsets[:, 1] > offsets[:, 0]))  # an unknown word of the text
        special = np.where(is_special, np.where(ids == cls_id, CLS, np.where(ids == sep_id, SEP, OTHER_SPECIAL)), NORMAL).astype(np.int8)
        if is_pair:
            # a special token belongs to the segment it closes: [SEP] after sentence B is segment 1
            type_ids = np.maximum.accumulate(np.asarray(e.sequence_ids, dtype=object) == 1).astype(np.int8)
        else:
            type_ids = np.zeros(len(ids), dtype=np.int8)
        punct = punct_table[ids] & (special == NORMAL)
        out.append(Encoded(ids, type_ids, special, offsets, list(e.tokens), punct))
    return out


def collate(encoded: list[Encoded], pad_id: int, device: Any, token_types: bool | str) -> dict[str, Any]:
    """Pad a batch to its longest member; token_type_ids only for families that embed them.

    ``token_types`` is ``LoadedModel.token_types`` (the config has more than one segment type); a model
    type name is read as before (BERT and ELECTRA take them).
    """
    import torch

    T = max(e.length for e in encoded)
    ids = np.full((len(encoded), T), pad_id, dtype=np.int64)
    mask = np.zeros((len(encoded), T), dtype=np.int64)
    types = np.zeros((len(encoded), T), dtype=np.int64)
    for i, e in enumerate(encoded):
        ids[i, : e.length] = e.ids
        mask[i, : e.length] = 1
        types[i, : e.length] = e.type_ids
    batch = {"input_ids": torch.from_numpy(ids).to(device), "attention_mask": torch.from_numpy(mask).to(device)}
    if token_types is True or token_types in ("bert", "electra"):
        batch["token_type_ids"] = torch.from_numpy(types).to(device)
    return batch


def token_masks(encoded: list[Encoded], device: Any) -> tuple[Any, Any, Any, Any]:
    """Padded bool masks [B, T]: real tokens, classification token, separators, punctuation pieces."""
    import torch

    T = max(e.length for e in encoded)
    m = np.zeros((4, len(encoded), T), dtype=bool)
    for i, e in enumerate(encoded):
        n = e.length
        m[0, i, :n] = True
        m[1, i, :n] = e.special == CLS
        m[2, i, :n] = e.special == SEP
        m[3, i, :n] = e.punct
    t = torch.from_numpy(m).to(device)
    return t[0], t[1], t[2], t[3]
