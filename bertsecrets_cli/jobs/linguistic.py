"""Kovaleva et al.'s linguistic features (sec. 4.4) in stores and tables, for the commands that know the words'
tags: ``framenet --conllu`` (UPOS/DEPREL) and ``classify --spacy PIPELINE`` (a spaCy pipeline the user names,
the optional extra ``spacy``). The rule is analysis/linguistic.py's."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from bertsecrets_cli.errors import InputError
from bertsecrets_cli.heads import head_name, layer_name
from bertsecrets_cli.render.tables import Table


def put_feature_heads(w: Any, features: Any, unit: str, *, causal: bool = False) -> None:
    """/heads/ling_<feature> (attention to it) and /heads/ling_cls_<feature> (the [CLS] row's attention to it;
    ``causal``: NaN, the first position's row sees only itself, so its attention to any word is undefined, not 0)."""
    from bertsecrets_cli.analysis.linguistic import LINGUISTIC_FEATURES, LINGUISTIC_LABELS

    col, row = features.means()
    if causal:
        row = np.full_like(row, np.nan)
    for k, f in enumerate(LINGUISTIC_FEATURES):
        n = int(features.counts[k])
        w.put_head_quantity(f"ling_{f}", col[..., k], f"mean attention given to {LINGUISTIC_LABELS[f]} (the most attended per example; "
                            f"{unit} without one skipped; {n} {unit})", n=n, n_counts=f"{unit} with {LINGUISTIC_LABELS[f]}")
        w.put_head_quantity(f"ling_cls_{f}", row[..., k], f"attention of the [CLS] row to {LINGUISTIC_LABELS[f]} (the most attended per example; "
                            f"{n} {unit})" + ("; undefined (NaN) on a causal decoder: the first position sees only itself" if causal else ""),
                            n=n, n_counts=f"{unit} with {LINGUISTIC_LABELS[f]}")


def feature_tables(features: Any, n: int, tags: str, unit: str, *, causal: bool = False) -> list[Table]:
    """Attention to nouns, verbs, pronouns, subjects, objects per layer (mean over heads), and the last layer's
    [CLS] attention to each, per head (not on a causal decoder, whose first row sees only itself); captions name
    where the tags came from and how many examples had each."""
    from bertsecrets_cli.analysis.linguistic import LINGUISTIC_FEATURES, LINGUISTIC_LABELS

    col, row = features.means()
    cols = [LINGUISTIC_LABELS[f] for f in LINGUISTIC_FEATURES]
    have = ", ".join(f"{LINGUISTIC_LABELS[f]} {int(c)}" for f, c in zip(LINGUISTIC_FEATURES, features.counts))
    cap = (f"attention mass (0-1) given to the most-attended such word of each example (column mean over query rows, a word's pieces summed; "
           f"{unit} without the feature skipped); tags: {tags} (docs/guide/clark.md: Linguistic features); {unit} with the feature: {have}")
    t = Table(f"attention to linguistic features per layer, mean over heads (N={n} {unit}; tags: {tags})", ["layer", *cols], caption=cap,
              name="features")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a feature no example had: NaN, said so by the counts
        per_layer = np.nanmean(col, axis=1)
    for ly in range(col.shape[0]):
        t.add(layer_name(ly), *(float(x) for x in per_layer[ly]))
    if causal:
        return [t]
    last = col.shape[0] - 1
    c = Table(f"last layer: attention of [CLS] to linguistic features per head (N={n} {unit}; tags: {tags})", ["head", *cols],
              caption=f"the [CLS] row's attention to the most-attended such word of each example; {unit} with the feature: {have}", name="cls-features")
    for h in range(col.shape[1]):
        c.add(head_name(last, h), *(float(x) for x in row[last, h]))
    return [t, c]


def load_spacy(name: str) -> Any:
    """spacy.load(name): a package name or a folder; one InputError line when spaCy or the pipeline is missing."""
    try:
        import spacy
    except ImportError:
        raise InputError(f"--spacy {name}: spaCy is not installed (pip install 'bertsecrets[spacy]')") from None
    try:
        return spacy.load(name)
    except (OSError, ValueError, ImportError) as e:
        raise InputError(f"--spacy {name}: cannot load this spaCy pipeline ({str(e).splitlines()[0][:200]})") from None


def spacy_tags(nlp: Any, texts: list[str]) -> list[list[tuple[int, int, str, str]]]:
    """Per text: (start, end, pos_, dep_) of each spaCy token, characters in that text."""
    return [[(t.idx, t.idx + len(t.text), t.pos_, t.dep_) for t in doc] for doc in nlp.pipe(texts)]


def piece_groups(offsets: np.ndarray, special: np.ndarray, type_ids: np.ndarray, segment: int,
                 words: list[tuple[int, int, str, str]]) -> tuple[list[list[int]], list[tuple[str, str]]]:
    """The ordinary pieces of ``segment`` that overlap each tagged word's characters, and the words' tags."""
    from bertsecrets_cli.tokens import NORMAL

    ok = (np.asarray(special) == NORMAL) & (np.asarray(type_ids) == segment)
    starts, ends = np.asarray(offsets)[:, 0], np.asarray(offsets)[:, 1]
    pieces = [np.flatnonzero(ok & (starts < e) & (ends > s)).tolist() for s, e, _, _ in words]
    return pieces, [(pos, dep) for _, _, pos, dep in words]
