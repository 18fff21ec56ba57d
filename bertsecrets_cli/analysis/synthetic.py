"""Synthetic attention maps of the five pattern types, with adjustable noise (tests, CNN demos, sanity checks).

Why: no human annotations of BERT's maps are public, so the classifiers are checked on maps whose type is
known by construction. Each map is built row by row (every row a probability distribution over the keys) as
``(1 - noise) * structure + noise * diffuse``, where ``diffuse`` is a softmax of N(0, 1) logits and
``structure`` is, per class (values drawn per map, rows jittered):

* vertical: 60-95% of each row on [CLS]/[SEP] (split at random between them; in one map of five, a stripe on
  the final '.' takes part of it), the rest a random distribution over the other tokens;
* diagonal: 60-95% on the previous, same and/or next token (one of five offset mixes per map), rest random;
* vertical+diagonal: 30-55% on [CLS]/[SEP] and 30-55% on neighbours, rest random;
* block (two-sentence inputs only): up to 15% on special tokens, up to 5% across sentences, the rest a random
  distribution over the tokens of the query's own sentence;
* heterogeneous: a random, often peaky distribution over all tokens (logit scale 1.5-3), mixed with up to 40%
  on [CLS]/[SEP] and up to 15% on neighbours: structure too weak to be one of the other types.

"Random distribution" = softmax of Gaussian logits whose scale is drawn per map, so some maps are diffuse and
some attend to a few tokens. Inputs are ``[CLS] a... [SEP]`` or ``[CLS] a... [SEP] b... [SEP]`` (half of the
non-block maps are pairs), with token kinds and segments as the store keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bertsecrets_cli.analysis.patterns import BLOCK, CLASSES, DIAGONAL, HETEROGENEOUS, MIXED, VERTICAL
from bertsecrets_cli.tokens import CLS, NORMAL, SEP

DEFAULT_NOISE = 0.2
DEFAULT_MIN_LEN = 16
DEFAULT_MAX_LEN = 40


@dataclass
class SyntheticMaps:
    maps: list[np.ndarray] = field(default_factory=list)  # float32 [T, T], rows sum to 1
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    special: list[np.ndarray] = field(default_factory=list)  # int8 [T] token kinds (bertsecrets_cli.tokens)
    type_ids: list[np.ndarray] = field(default_factory=list)  # int8 [T] segments
    tokens: list[list[str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.maps)


def _layout(T: int, pair: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Token kinds, segments and placeholder tokens of a T-token single sentence or pair."""
    special = np.full(T, NORMAL, dtype=np.int8)
    type_ids = np.zeros(T, dtype=np.int8)
    special[0], special[-1] = CLS, SEP
    tokens = ["[CLS]"] + [f"w{i}" for i in range(1, T - 1)] + ["[SEP]"]
    if pair:
        mid = int(rng.integers(T // 3, 2 * T // 3 + 1))
        special[mid] = SEP
        type_ids[mid + 1 :] = 1
        tokens[mid] = "[SEP]"
        tokens[mid - 1] = "."
    tokens[-2] = "."
    return special, type_ids, tokens


def _softmax_rows(logits: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    x = np.where(allowed, logits, -np.inf)
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    s = e.sum(-1, keepdims=True)
    return np.divide(e, s, out=np.zeros_like(e), where=s > 0)


def _random_rows(rng: np.random.Generator, T: int, allowed: np.ndarray, scale: float) -> np.ndarray:
    """[T, T] rows, each a softmax of N(0, scale) logits over the allowed keys (allowed [T] or [T, T])."""
    allowed = np.broadcast_to(allowed, (T, T))
    rows = _softmax_rows(rng.normal(0.0, scale, (T, T)), allowed)
    empty = rows.sum(-1) == 0
    rows[empty] = 1.0 / T
    return rows


def _special_rows(rng: np.random.Generator, special: np.ndarray, stripe_col: int | None) -> np.ndarray:
    """[T] weights over [CLS]/[SEP] (and an optional stripe column), the same for every row of a map."""
    cols = list(np.flatnonzero(special != NORMAL))
    w = np.zeros(len(special))
    w[cols] = rng.dirichlet(np.full(len(cols), 0.5))
    if stripe_col is not None:
        w *= 1 - (share := rng.uniform(0.45, 0.8))
        w[stripe_col] += share
    return w


def _diagonal_rows(rng: np.random.Generator, T: int) -> np.ndarray:
    """[T, T] rows on the previous / same / next token; a missing neighbour's share moves to the others."""
    mixes = ((1, 0, 0), (0, 0, 1), (0, 1, 0), (0.5, 0, 0.5), tuple(rng.dirichlet((1, 1, 1))))
    w = np.asarray(mixes[int(rng.integers(len(mixes)))], dtype=np.float64)
    rows = np.zeros((T, T))
    for k, wk in zip((-1, 0, 1), w):
        if wk > 0:
            i = np.arange(max(0, -k), min(T, T - k))
            rows[i, i + k] = wk
    s = rows.sum(-1, keepdims=True)
    rows[s[:, 0] == 0, np.flatnonzero(s[:, 0] == 0)] = 1.0
    return rows / rows.sum(-1, keepdims=True)


def _jitter(rng: np.random.Generator, center: float, T: int, lo: float = 0.0, hi: float = 0.98) -> np.ndarray:
    return np.clip(center + rng.normal(0, 0.03, (T, 1)), lo, hi)


def make_map(cls: int, T: int, rng: np.random.Generator, noise: float = DEFAULT_NOISE, pair: bool | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """One map of class ``cls`` (index into CLASSES) -> (att [T, T], special [T], type_ids [T], tokens)."""
    if cls == BLOCK:
        pair = True
    elif pair is None:
        pair = bool(rng.random() < 0.5)
    special, type_ids, tokens = _layout(T, pair, rng)
    ordinary = special == NORMAL
    rand = _random_rows(rng, T, ordinary, rng.uniform(1.0, 2.5))
    if cls == VERTICAL:
        stripe = T - 2 if rng.random() < 0.2 else None
        s = _jitter(rng, rng.uniform(0.6, 0.95), T)
        m = s * _special_rows(rng, special, stripe)[None, :] + (1 - s) * rand
    elif cls == DIAGONAL:
        d = _jitter(rng, rng.uniform(0.6, 0.95), T)
        m = d * _diagonal_rows(rng, T) + (1 - d) * rand
    elif cls == MIXED:
        s = _jitter(rng, rng.uniform(0.3, 0.55), T, hi=0.6)
        d = _jitter(rng, rng.uniform(0.3, 0.55), T, hi=0.6)
        m = s * _special_rows(rng, special, None)[None, :] + d * _diagonal_rows(rng, T) + np.clip(1 - s - d, 0, 1) * rand
        m /= m.sum(-1, keepdims=True)
    elif cls == BLOCK:
        own = (type_ids[:, None] == type_ids[None, :]) & ordinary[None, :]
        inside = _random_rows(rng, T, own, rng.uniform(0.5, 1.5))
        across = _random_rows(rng, T, ~own & ordinary[None, :], 1.0)
        sp = rng.uniform(0, 0.15)
        leak = rng.uniform(0, 0.05)
        m = sp * _special_rows(rng, special, None)[None, :] + leak * across + (1 - sp - leak) * inside
    elif cls == HETEROGENEOUS:
        peaky = _random_rows(rng, T, np.ones(T, bool), rng.uniform(1.5, 3.0))
        a, b = rng.uniform(0, 0.4), rng.uniform(0, 0.15)
        m = a * _special_rows(rng, special, None)[None, :] + b * _diagonal_rows(rng, T) + (1 - a - b) * peaky
    else:
        raise ValueError(f"unknown class {cls}")
    diffuse = _random_rows(rng, T, np.ones(T, bool), 1.0)
    att = (1 - noise) * m + noise * diffuse
    att /= att.sum(-1, keepdims=True)
    return att.astype(np.float32), special, type_ids, tokens


def generate(n: int, *, noise: float = DEFAULT_NOISE, min_len: int = DEFAULT_MIN_LEN, max_len: int = DEFAULT_MAX_LEN,
             classes: tuple[int, ...] | None = None, seed: int = 0) -> SyntheticMaps:
    """``n`` maps, the classes in equal numbers (in a shuffled order), lengths uniform in [min_len, max_len]."""
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise {noise}: must be between 0 and 1")
    if min_len < 8 or max_len < min_len:
        raise ValueError(f"lengths {min_len}-{max_len}: need 8 <= min_len <= max_len")
    rng = np.random.default_rng(seed)
    cls_list = tuple(range(len(CLASSES))) if classes is None else tuple(classes)
    labels = np.asarray([cls_list[i % len(cls_list)] for i in range(n)], dtype=np.int64)
    rng.shuffle(labels)
    out = SyntheticMaps(labels=labels)
    for c in labels:
        att, sp, ty, tok = make_map(int(c), int(rng.integers(min_len, max_len + 1)), rng, noise)
        out.maps.append(att)
        out.special.append(sp)
        out.type_ids.append(ty)
        out.tokens.append(tok)
    return out
