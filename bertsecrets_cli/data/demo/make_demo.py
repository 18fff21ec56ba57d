"""Generate the shipped demo data sets (synthetic, written for bertsecrets; NOT GLUE).

Run ``python -m bertsecrets_cli.data.demo.make_demo`` to rewrite the ``*.jsonl`` files next to
this script. Output is deterministic (fixed seed), so re-running must leave the files unchanged.

Three sets, each with a ``train`` and a ``dev`` part, one JSON object per line
(``{"id", "text_a", "text_b", "label"}``):

* ``single``     -- sentiment-like reviews; label 0 = negative, 1 = positive. Negation
                    ("not", "never", "nothing", "didn't") flips the polarity of some sentences,
                    and contrast clauses ("Although A, B") carry the label in the second clause.
* ``pair``       -- paraphrase-like sentence pairs; label 1 = same meaning (synonyms, moved
                    time phrases, passive voice), 0 = different (one fact changed, negated, or
                    an unrelated sentence).
* ``regression`` -- similarity scores 0.0-5.0 from the number of facts the two sentences share,
                    with a little noise.

Sentences are built from compositional templates over a hand-written vocabulary; no sentence
is taken from any corpus.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Callable

SEED = 20190819  # fixed: the files are part of the package and must be reproducible
SIZES = {"train": 600, "dev": 200}
OUT_DIR = Path(__file__).resolve().parent

# --------------------------------------------------------------------------- single (sentiment)

# Each domain: things one can review, and a noun for the whole experience.
DOMAINS: dict[str, dict[str, list[str]]] = {
    "film": {
        "parts": ["plot", "acting", "soundtrack", "ending", "dialogue", "camera work", "lead actor",
                  "pacing", "script", "final scene", "supporting cast", "opening sequence"],
        "whole": ["film", "movie", "picture", "sequel", "documentary"],
    },
    "restaurant": {
        "parts": ["soup", "service", "dessert", "waiter", "menu", "bread", "pasta", "curry",
                  "wine list", "coffee", "kitchen staff", "lemon tart"],
        "whole": ["restaurant", "bistro", "cafe", "dinner", "lunch"],
    },
    "book": {
        "parts": ["story", "characters", "prose", "final chapter", "narrator", "translation",
                  "first half", "cover", "dialogue", "plot twist", "heroine", "epilogue"],
        "whole": ["novel", "book", "memoir", "short story collection", "biography"],
    },
    "hotel": {
        "parts": ["room", "staff", "breakfast", "view", "pool", "bed", "reception", "location",
                  "shower", "lobby", "spa", "balcony"],
        "whole": ["hotel", "stay", "guesthouse", "resort", "weekend away"],
    },
    "gadget": {
        "parts": ["battery", "screen", "camera", "charger", "keyboard", "speaker", "case",
                  "touchpad", "setup app", "microphone", "hinge", "manual"],
        "whole": ["phone", "laptop", "tablet", "headset", "smartwatch"],
    },
    "show": {
        "parts": ["band", "singer", "lighting", "encore", "drummer", "sound mix", "support act",
                  "stage design", "choir", "orchestra", "second act", "costumes"],
        "whole": ["concert", "musical", "play", "festival", "show"],
    },
}

POS_ADJ = ["wonderful", "delightful", "charming", "superb", "gripping", "moving", "brilliant",
           "clever", "warm", "elegant", "memorable", "generous", "fresh", "lovely", "thoughtful",
           "excellent", "stunning", "polished", "reliable", "impressive", "flawless", "inviting",
           "joyful", "spotless", "tender", "inventive", "satisfying", "graceful"]
NEG_ADJ = ["dull", "tedious", "clumsy", "bland", "awful", "disappointing", "sloppy",
           "forgettable", "cold", "stale", "noisy", "overpriced", "shallow", "messy", "confusing",
           "tiresome", "flimsy", "irritating", "lifeless", "predictable", "greasy", "rude",
           "cramped", "sluggish", "grim", "soggy", "pointless", "shabby"]
INTENSIFIERS = ["", "", "", "really ", "truly ", "quite ", "surprisingly ", "remarkably ",
                "utterly ", "rather ", "genuinely ", "so "]
POS_VP = ["I loved every minute of it", "we would gladly come back", "it made my whole week",
          "I would recommend it to anyone", "we left with big smiles", "it was worth every penny",
          "I keep telling my friends about it", "it exceeded all our hopes",
          "I could not stop smiling", "it felt like a real treat"]
NEG_VP = ["I wanted my money back", "we left early", "I nearly fell asleep",
          "I regret wasting an evening on it", "it was a complete letdown",
          "we will not be coming back", "it felt like a chore", "I was bored within minutes",
          "it fell apart almost at once", "nobody in our group enjoyed it"]
# Negated phrases whose polarity is the opposite of the words they contain.
NEG_OF_POS_VP = ["I didn't enjoy a single minute of it", "I would never recommend it",
                 "nothing about it worked for me", "I did not like it one bit",
                 "it never once held my attention", "none of us were impressed"]
NEG_OF_NEG_VP = ["I didn't regret a thing", "I was never bored for a second",
                 "nothing about it disappointed me", "I could not find a single fault",
                 "not one of us wanted it to end", "it never felt slow"]
TAILS = ["", "", "", " from start to finish", " on our second visit", " for the price",
         " last weekend", " despite the crowds", " this time", " after all the hype",
         " on a rainy Tuesday", " with my parents"]
OPENERS = ["", "", "", "Honestly, ", "To be fair, ", "In short, ", "Overall, ", "Frankly, ",
           "All in all, ", "I have to say "]


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _review(rng: random.Random, label: int) -> str:
    """One review sentence with the given polarity (1 positive, 0 negative)."""
    dom = DOMAINS[rng.choice(list(DOMAINS))]
    part, part2 = rng.sample(dom["parts"], 2)
    whole = rng.choice(dom["whole"])
    good, bad = rng.choice(POS_ADJ), rng.choice(NEG_ADJ)
    adj, other = (good, bad) if label else (bad, good)
    inten = rng.choice(INTENSIFIERS)
    tail = rng.choice(TAILS)
    opener = rng.choice(OPENERS)
    be = "were" if part.endswith("s") else "was"
    be2 = "were" if part2.endswith("s") else "was"
    kind = rng.randrange(9)
    if kind == 0:
        s = f"{opener}the {part} {be} {inten}{adj}{tail}."
    elif kind == 1:  # negated adjective of the opposite polarity
        s = f"{opener}the {part} {be} not {other} at all{tail}."
    elif kind == 2:  # two parts, same polarity
        adj2 = rng.choice(POS_ADJ if label else NEG_ADJ)
        s = f"{opener}the {part} {be} {inten}{adj}, and the {part2} {be2} {adj2} too."
    elif kind == 3:  # contrast: the main clause decides
        s = f"Although the {part} {be} {other}, the {whole} as a whole was {inten}{adj}."
    elif kind == 4:
        vp = rng.choice(POS_VP if label else NEG_VP)
        s = f"{opener}the {whole} was {inten}{adj} and {vp}."
    elif kind == 5:  # negated verb phrase
        vp = rng.choice(NEG_OF_NEG_VP if label else NEG_OF_POS_VP)
        s = f"{_cap(vp)}; the {part} {be} {adj}{tail}."
    elif kind == 6:
        if rng.random() < 0.5:
            s = f"Nothing about the {part} felt {other}{tail}."
        else:
            s = f"There was nothing {other} about the {part}{tail}."
    elif kind == 7:
        s = f"What {_a(adj)} {whole}{'!' if rng.random() < 0.5 else '.'}"
        if rng.random() < 0.6:
            s += f" {_cap(rng.choice(POS_VP if label else NEG_VP))}."
    else:
        never = rng.choice(["I never expected the", "I had never seen a"])
        if never.endswith("the"):
            s = f"{never} {part} to be so {adj}{tail}."
        else:
            s = f"{never} {whole} with such {_a(adj)} {part}{tail}."
    s = s.replace("  ", " ")
    return _cap(s)


def make_single(rng: random.Random, n: int, seen: set[str]) -> list[tuple[str, None, int]]:
    rows: list[tuple[str, None, int]] = []
    while len(rows) < n:
        label = len(rows) % 2  # exactly balanced
        s = _review(rng, label)
        words = len(s.split())
        if s in seen or not 5 <= words <= 25:
            continue
        seen.add(s)
        rows.append((s, None, label))
    rng.shuffle(rows)
    return rows


# --------------------------------------------------------------------------- events (pair, regression)

# (name used in sentence, a paraphrase of it)
PEOPLE = [("Maria", "Maria"), ("the mayor", "the city's mayor"), ("the new coach", "the recently hired coach"),
          ("a local farmer", "a farmer from the area"), ("my neighbour", "the woman next door"),
          ("the museum director", "the head of the museum"), ("Dr. Okafor", "Dr. Okafor"),
          ("the school principal", "the head teacher"), ("our landlord", "the owner of our flat"),
          ("the team captain", "the captain of the team"), ("Jonas", "Jonas"),
          ("the young pilot", "the junior pilot"), ("the bakery owner", "the man who runs the bakery"),
          ("Professor Lind", "Professor Lind"), ("the committee", "the panel"),
          ("the city council", "the town council"), ("Aunt Rosa", "Aunt Rosa"),
          ("the night nurse", "the nurse on the night shift")]

# (past, participle, paraphrase past, paraphrase participle, objects[(obj, obj paraphrase)])
ACTIONS = [
    ("bought", "bought", "purchased", "purchased",
     [("an old red car", "a used red car"), ("a small boat", "a little boat"), ("two tickets", "a pair of tickets"),
      ("a house by the lake", "a lakeside house")]),
    ("repaired", "repaired", "fixed", "fixed",
     [("the broken fence", "the damaged fence"), ("the church roof", "the roof of the church"),
      ("the village bridge", "the bridge in the village"), ("a leaking pipe", "a pipe that was leaking")]),
    ("cancelled", "cancelled", "called off", "called off",
     [("the annual parade", "the yearly parade"), ("the board meeting", "the meeting of the board"),
      ("the summer festival", "the festival in summer"), ("the evening flight", "the late flight")]),
    ("opened", "opened", "launched", "launched",
     [("a new library", "a new public library"), ("a small clinic", "a little clinic"),
      ("a bike shop", "a bicycle shop"), ("the harbour market", "the market at the harbour")]),
    ("painted", "painted", "repainted", "repainted",
     [("the kitchen walls", "the walls of the kitchen"), ("the garden gate", "the gate to the garden"),
      ("an old bench", "an aged bench"), ("the front door", "the main door")]),
    ("found", "found", "discovered", "discovered",
     [("a lost wallet", "a missing wallet"), ("an ancient coin", "a very old coin"),
      ("a hidden letter", "a concealed letter"), ("a stray puppy", "a lost puppy")]),
    ("wrote", "written", "penned", "penned",
     [("a long report", "a lengthy report"), ("a letter of thanks", "a thank-you letter"),
      ("a short play", "a brief play"), ("the new rules", "the updated rules")]),
    ("sold", "sold", "sold off", "sold off",
     [("the family farm", "the farm owned by the family"), ("an antique clock", "an old antique clock"),
      ("a vintage guitar", "an old guitar"), ("the blue van", "the van that was blue")]),
    ("approved", "approved", "endorsed", "endorsed",
     [("the school budget", "the budget for the school"), ("a new park", "a new public park"),
      ("the road repairs", "the repairs to the road"), ("a longer lunch break", "an extended lunch break")]),
    ("cleaned", "cleaned", "tidied", "tidied",
     [("the whole attic", "the entire attic"), ("the riverbank", "the bank of the river"),
      ("the old barn", "the aging barn"), ("the classroom", "the teaching room")]),
]

PLURAL_OBJECTS = {"two tickets", "the kitchen walls", "the walls of the kitchen", "the new rules",
                  "the updated rules", "the road repairs", "the repairs to the road"}

# (phrase, paraphrase)
TIMES = [("on Monday", "on Monday"), ("last week", "the week before"), ("yesterday", "a day ago"),
         ("in early March", "at the start of March"), ("this morning", "earlier today"),
         ("on Friday evening", "on Friday night"), ("last summer", "during the previous summer"),
         ("two days ago", "a couple of days ago"), ("in the spring", "in springtime"),
         ("after the storm", "once the storm had passed")]
PLACES = [("in the old town", "in the historic centre"), ("near the station", "close to the railway station"),
          ("at the harbour", "down by the harbour"), ("in the village", "in the small village"),
          ("on the north side", "in the northern part of town"), ("behind the school", "at the back of the school"),
          ("by the river", "next to the river"), ("downtown", "in the city centre")]

UNRELATED = [
    "The weather forecast promises heavy rain for the whole weekend.",
    "Most cats sleep for more than twelve hours a day.",
    "The recipe calls for three eggs and a cup of flour.",
    "Train tickets are cheaper if you book them a month ahead.",
    "The mountain trail is closed until the snow melts.",
    "Several students forgot their homework at home.",
    "The price of coffee beans has risen sharply this year.",
    "A new species of frog was described by biologists.",
    "The orchestra will tour four countries in the autumn.",
    "Our printer has run out of ink again.",
    "The football match ended in a goalless draw.",
    "Bees are attracted to bright yellow and blue flowers.",
    "The hospital is hiring more nurses for the winter.",
    "He prefers green tea to black coffee in the morning.",
    "The ferry leaves the island every two hours.",
    "Children in the area start school at the age of six.",
]


def _event(rng: random.Random) -> dict[str, int]:
    a = rng.randrange(len(ACTIONS))
    return {"who": rng.randrange(len(PEOPLE)), "act": a, "obj": rng.randrange(len(ACTIONS[a][4])),
            "when": rng.randrange(len(TIMES)), "where": rng.randrange(len(PLACES))}


def _render(ev: dict[str, int], rng: random.Random, *, para: bool, negate: bool = False,
            with_place: bool = True) -> str:
    """Write an event as a sentence; ``para`` picks paraphrased words and a varied structure."""
    p = 1 if para else 0
    who = PEOPLE[ev["who"]][p if para and rng.random() < 0.7 else 0]
    past, part, ppast, ppart, objs = ACTIONS[ev["act"]]
    use_syn = para and rng.random() < 0.7
    verb, participle = (ppast, ppart) if use_syn else (past, part)
    obj = objs[ev["obj"]][1 if para and rng.random() < 0.6 else 0]
    when = TIMES[ev["when"]][1 if para and rng.random() < 0.6 else 0]
    where = PLACES[ev["where"]][1 if para and rng.random() < 0.6 else 0] if with_place else ""
    loc = f" {where}" if where else ""
    passive = para and not negate and rng.random() < 0.35
    front_time = rng.random() < (0.5 if para else 0.2)
    if passive:
        be = "were" if obj in PLURAL_OBJECTS else "was"
        core = f"{obj}{loc} {be} {participle} by {who}"
    elif negate:
        base = {"bought": "buy", "repaired": "repair", "cancelled": "cancel", "opened": "open",
                "painted": "paint", "found": "find", "wrote": "write", "sold": "sell",
                "approved": "approve", "cleaned": "clean"}[past]
        core = f"{who} did not {base} {obj}{loc}"
    else:
        core = f"{who} {verb} {obj}{loc}"
    s = f"{when}, {core}." if front_time else f"{core} {when}."
    return _cap(s)


def _change(ev: dict[str, int], rng: random.Random, slot: str) -> dict[str, int]:
    """The same event with one fact replaced by a different one."""
    new = dict(ev)
    if slot == "act":
        choices = [a for a in range(len(ACTIONS)) if a != ev["act"]]
        new["act"] = rng.choice(choices)
        new["obj"] = rng.randrange(len(ACTIONS[new["act"]][4]))
    else:
        size = {"who": len(PEOPLE), "obj": len(ACTIONS[ev["act"]][4]), "when": len(TIMES),
                "where": len(PLACES)}[slot]
        new[slot] = rng.choice([i for i in range(size) if i != ev[slot]])
    return new


def make_pair(rng: random.Random, n: int, seen: set[str]) -> list[tuple[str, str, int]]:
    rows: list[tuple[str, str, int]] = []
    while len(rows) < n:
        label = len(rows) % 2
        ev = _event(rng)
        place = rng.random() < 0.6
        a = _render(ev, rng, para=False, with_place=place)
        if label == 1:
            b = _render(ev, rng, para=True, with_place=place)
        else:
            how = rng.random()
            if how < 0.3:
                b = rng.choice(UNRELATED) if rng.random() < 0.5 else _render(_event(rng), rng, para=True)
            elif how < 0.45:
                b = _render(ev, rng, para=rng.random() < 0.5, negate=True, with_place=place)
            else:
                slots = ["who", "act", "obj", "when"] + (["where"] if place else [])
                b = _render(_change(ev, rng, rng.choice(slots)), rng, para=rng.random() < 0.6,
                            with_place=place)
        if rng.random() < 0.5:
            a, b = b, a
        key = a + "\t" + b
        if key in seen or a == b:
            continue
        seen.add(key)
        rows.append((a, b, label))
    rng.shuffle(rows)
    return rows


def make_regression(rng: random.Random, n: int, seen: set[str]) -> list[tuple[str, str, float]]:
    rows: list[tuple[str, str, float]] = []
    while len(rows) < n:
        ev = _event(rng)
        a = _render(ev, rng, para=False)
        kind = rng.random()
        if kind < 0.12:  # unrelated
            b = rng.choice(UNRELATED)
            score = rng.uniform(0.0, 0.4)
        elif kind < 0.22:  # different event altogether, same sentence shape
            other = _event(rng)
            b = _render(other, rng, para=rng.random() < 0.5)
            shared = sum(other[k] == ev[k] for k in ("who", "act", "when", "where"))
            score = 0.5 + 0.4 * shared + rng.uniform(-0.3, 0.3)
        elif kind < 0.32:  # negation: same topic, opposite meaning
            b = _render(ev, rng, para=rng.random() < 0.5, negate=True)
            score = 2.6 + rng.uniform(-0.4, 0.4)
        else:  # change 0..4 facts
            changed = rng.choice([0, 0, 1, 1, 2, 2, 3, 4])
            new = ev
            for slot in rng.sample(["who", "act", "when", "where"], changed):
                new = _change(new, rng, slot)
            b = _render(new, rng, para=rng.random() < 0.6)
            score = 5.0 - 1.1 * changed + rng.uniform(-0.35, 0.15)
        score = round(min(5.0, max(0.0, score)), 1)
        if rng.random() < 0.5:
            a, b = b, a
        key = a + "\t" + b
        if key in seen or (a == b and score < 5.0):
            continue
        seen.add(key)
        rows.append((a, b, score))
    rng.shuffle(rows)
    return rows


def write_set(name: str, maker: Callable, rng: random.Random) -> None:
    seen: set[str] = set()  # shared across train and dev so that the parts never overlap
    for split, n in SIZES.items():
        rows = maker(rng, n, seen)
        path = OUT_DIR / f"{name}_{split}.jsonl"
        with path.open("w", encoding="utf-8", newline="\n") as f:
            for i, (a, b, label) in enumerate(rows):
                rec = {"id": f"demo-{name}-{split}-{i:04d}", "text_a": a, "text_b": b, "label": label}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def main() -> None:
    rng = random.Random(SEED)
    write_set("single", make_single, rng)
    write_set("pair", make_pair, rng)
    write_set("regression", make_regression, rng)


if __name__ == "__main__":
    main()
