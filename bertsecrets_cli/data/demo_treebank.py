"""A small synthetic English treebank with coreference (bertsecrets demo data, NOT a real treebank).

No Universal Dependencies or CorefUD data can be downloaded here, so tests, benchmarks and the README's
demo figures use two-sentence documents from a template grammar: "the old farmer opened a shop in the
town . she sold the shop ." with UD heads and relations and CorefUD ``Entity=`` brackets (subjects and
objects of the second sentence refer back by pronoun, by a repeated noun or by name). Numbers measured on
it show that the machinery works; they are not comparable with the paper's WSJ or CoNLL-2012 figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bertsecrets_cli import outputs

PEOPLE = [("farmer", "she"), ("teacher", "he"), ("doctor", "she"), ("baker", "he"), ("pilot", "she"), ("singer", "he"), ("writer", "she")]
NAMES = [("Mary", "she"), ("John", "he"), ("Anna", "she"), ("Peter", "he"), ("Laura", "she"), ("David", "he")]
THINGS = ["shop", "book", "car", "house", "letter", "garden", "boat", "song", "bike", "cake"]
PLACES = ["town", "park", "city", "market", "school", "village", "station"]
ADJS = ["old", "young", "small", "new", "quiet", "famous", "busy"]
VERBS1 = ["opened", "bought", "found", "painted", "sold", "liked", "built", "visited"]
VERBS2 = ["loved", "kept", "cleaned", "showed", "fixed", "wanted", "used"]
PREPS = ["in", "near", "behind"]


def _np(rng: np.random.Generator, noun: str, det: str | None = None, adj: bool | None = None) -> list[tuple[str, str, str]]:
    """A noun phrase as (form, upos, relation-to-the-noun); the noun is last."""
    out = [(det or str(rng.choice(["the", "a"])), "DET", "det")]
    if adj if adj is not None else rng.random() < 0.4:
        out.append((str(rng.choice(ADJS)), "ADJ", "amod"))
    out.append((noun, "NOUN", ""))
    return out


def _sentence(parts: list[tuple[list[tuple[str, str, str]], str, str | None]], verb: str) -> tuple[list[tuple], list[tuple]]:
    """parts: (phrase, relation of its head to the verb, entity or None), the verb after the first part.
    Returns rows (form, upos, head, deprel) and mentions (first word, last word, head word, entity), 0-based."""
    words: list[list] = []
    mentions: list[tuple] = []
    verb_pos = len(parts[0][0])
    for k, (phrase, rel, ent) in enumerate(parts):
        if k == 1:
            words.append([verb, "VERB", None, "root"])
        start = len(words)
        case = [w for w in phrase if w[2] == "case"]
        np_words = [w for w in phrase if w[2] != "case"]
        for form, upos, r in case:
            words.append([form, upos, "N", "case"])
        noun_at = start + len(case) + len(np_words) - 1
        for form, upos, r in np_words:
            words.append([form, upos, "N" if r else verb_pos, r or rel])
        for w in words[start:]:
            if w[2] == "N":
                w[2] = noun_at
        if ent is not None:
            mentions.append((start + len(case), noun_at, noun_at, ent))
    words.append([".", "PUNCT", verb_pos, "punct"])
    return [tuple(w) for w in words], mentions


def make_document(rng: np.random.Generator) -> list[tuple[list[tuple], list[tuple]]]:
    """Two sentences with chains across them."""
    if rng.random() < 0.35:
        name, subj_pron = NAMES[int(rng.integers(len(NAMES)))]
        subj = [(name, "PROPN", "")]
    else:
        noun, subj_pron = PEOPLE[int(rng.integers(len(PEOPLE)))]
        subj = _np(rng, noun, "the")
        name = None
    thing = str(rng.choice(THINGS))
    place = str(rng.choice(PLACES))
    obl = [(str(rng.choice(PREPS)), "ADP", "case"), *_np(rng, place, "the", False)]
    s1 = _sentence([(subj, "nsubj", "e1"), (_np(rng, thing), "obj", "e2"), (obl, "obl", "e3")], str(rng.choice(VERBS1)))
    r = rng.random()
    if r < 0.5:
        subj2 = [(subj_pron, "PRON", "")]
    elif r < 0.75 and name is not None:
        subj2 = [(name, "PROPN", "")]
    else:
        subj2 = [(subj_pron, "PRON", "")] if name is not None else _np(rng, subj[-1][0], "the", False)
    obj2 = [("it", "PRON", "")] if rng.random() < 0.4 else _np(rng, thing, "the", False)
    s2 = _sentence([(subj2, "nsubj", "e1"), (obj2, "obj", "e2")], str(rng.choice(VERBS2)))
    return [s1, s2]


def write_demo_treebank(path: str | Path, n_documents: int, seed: int = 0) -> Path:
    """Write ``n_documents`` two-sentence documents as CorefUD-style CoNLL-U."""
    rng = np.random.default_rng(seed)
    lines = ["# global.Entity = eid-etype-head-other", "# bertsecrets synthetic demo treebank (not real data)"]
    for d in range(n_documents):
        lines.append(f"# newdoc id = doc{d}")
        for k, (rows, mentions) in enumerate(make_document(rng)):
            lines.append(f"# sent_id = doc{d}-{k + 1}")
            lines.append("# text = " + " ".join(r[0] for r in rows))
            misc = [""] * len(rows)
            for first, last, head, ent in mentions:
                eid = f"d{d}{ent}"
                if first == last:
                    misc[first] += f"({eid}-x-1)"
                else:
                    misc[first] += f"({eid}-x-{head - first + 1}"
                    misc[last] += f"{eid})"
            for i, (form, upos, head, rel) in enumerate(rows):
                gov = 0 if head is None else head + 1
                lines.append("\t".join([str(i + 1), form, form.lower(), upos, "_", "_", str(gov), rel, "_", f"Entity={misc[i]}" if misc[i] else "_"]))
            lines.append("")
    p = Path(path)
    outputs.write_text(p, "\n".join(lines) + "\n")
    return p


if __name__ == "__main__":  # python -m bertsecrets_cli.data.demo_treebank OUT.conllu N_DOCUMENTS [SEED]
    import sys

    if len(sys.argv) not in (3, 4):
        sys.exit("usage: python -m bertsecrets_cli.data.demo_treebank OUT.conllu N_DOCUMENTS [SEED]")
    write_demo_treebank(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) == 4 else 0)
