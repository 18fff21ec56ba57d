"""Turn examples into model inputs, with the token-level facts the store keeps."""

from __future__ import annotations

from dataclasses import dataclass
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

    @property
    def punct(self) -> np.ndarray:
        """bool [T]: word pieces made only of punctuation (special tokens excluded)."""
        return np.array([is_punctuation_token(t) for t in self.tokens], dtype=bool) & (self.special == NORMAL)

    @property
    def length(self) -> int:
        return len(self.ids)


def encode_examples(tokenizer: Any, pairs: list[tuple[str, str | None]], max_length: int, truncation: str = "longest_first") -> list[Encoded]:
    """Tokenise (text_a, text_b) pairs; pairs are truncated by ``truncation`` as in transformers."""
    cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    all_special = set(tokenizer.all_special_ids)
    out: list[Encoded] = []
    for a, b in pairs:
        enc = tokenizer(
            a,
            b,
            truncation=truncation if b is not None else True,
            max_length=max_length,
            return_offsets_mapping=True,
        )
        ids = np.asarray(enc["input_ids"], dtype=np.int32)
        seq = enc.sequence_ids()
        special = np.full(len(ids), NORMAL, dtype=np.int8)
        for i, t in enumerate(ids.tolist()):
            if seq[i] is None or t in all_special:
                special[i] = CLS if t == cls_id else SEP if t == sep_id else OTHER_SPECIAL
        # a special token belongs to the segment it closes: [SEP] after sentence B is segment 1
        type_ids = np.maximum.accumulate(np.asarray([1 if s == 1 else 0 for s in seq], dtype=np.int8))
        offsets = np.asarray(enc["offset_mapping"], dtype=np.int32).reshape(-1, 2)
        out.append(Encoded(ids, type_ids, special, offsets, tokenizer.convert_ids_to_tokens(ids.tolist())))
    return out


def collate(encoded: list[Encoded], pad_id: int, device: Any, model_type: str) -> dict[str, Any]:
    """Pad a batch to its longest member; token_type_ids only for families that take them."""
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
    if model_type in ("bert", "electra"):
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
