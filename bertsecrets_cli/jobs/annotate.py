"""``classify annotate``: one attention map at a time on the terminal, one key per label, appended to a TSV at once."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from bertsecrets_cli.analysis import patterns as P
from bertsecrets_cli.errors import InputError, OutputError
from bertsecrets_cli.heads import head_name
from bertsecrets_cli.jobs.labels import SKIP, TSV_COLUMNS, TSV_HEADER_NOTE, read_labels, store_ref
from bertsecrets_cli.render.tables import Table


def stream_keys(stream: TextIO) -> Iterator[str]:
    """Keys from a non-terminal stream (tests, scripts): every non-blank character is one key press."""
    while True:
        ch = stream.read(1)
        if not ch:
            return
        if not ch.isspace():
            yield ch


def terminal_keys(stream: TextIO) -> Iterator[str]:
    """Single key presses from a terminal, without Enter (cbreak mode, restored afterwards)."""
    import termios
    import tty

    fd = stream.fileno()
    old = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        while True:
            ch = os.read(fd, 1).decode("utf-8", "replace")
            if not ch:
                return
            yield ch
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def key_source(stream: TextIO | None = None) -> Iterator[str]:
    """Terminal key presses when ``stream`` (stdin) is a terminal, else characters read from it."""
    s = stream if stream is not None else sys.stdin
    if s is None:
        return iter(())
    try:
        tty_ = s.isatty()
    except (AttributeError, ValueError):
        tty_ = False
    return terminal_keys(s) if tty_ else stream_keys(s)


@dataclass
class AnnotateOptions:
    limit: int | None = None  # maps to label in this session
    seed: int = 0
    heads: list[tuple[int, int]] | None = None
    hint: bool = False
    locking: bool | None = None
    max_tokens: int = 48


@dataclass
class AnnotateResult:
    labelled: int
    skipped: int
    remaining: int
    quit: bool
    table: Table


KEY_HELP = "v vertical  d diagonal  m vertical+diagonal  b block  h heterogeneous  s skip  q quit"


def run_annotate(store_path: str | Path, labels_path: str | Path, opts: AnnotateOptions, *, keys: Iterator[str] | None = None, console: Any = None) -> AnnotateResult:
    """Show the store's maps one by one (a seeded random order) and append one TSV row per key press.

    Maps already in the TSV for this store are skipped, so a session can stop (q) and resume any time.
    """
    from bertsecrets_cli.render.console import err_console
    from bertsecrets_cli.render.terminal import render_map
    from bertsecrets_cli.store import open_store

    if str(store_path) == "-":
        raise InputError("-: annotate needs a store file (standard input carries the key presses)")
    store = Path(store_path)
    tsv = Path(labels_path)
    if tsv.is_dir():
        raise OutputError(f"{tsv}: is a folder; give a file name for the labels")
    if not tsv.parent.is_dir():
        raise OutputError(f"{tsv}: folder {tsv.parent} does not exist")
    if tsv.exists() and not tsv.is_file():  # a FIFO would block, a device swallow the answers
        raise OutputError(f"{tsv}: is not a regular file; the labels are appended to a file, give one")
    done = {(r.example, r.layer, r.head) for r in read_labels(tsv) if r.store == store.resolve()} if tsv.exists() else set()
    keys = keys if keys is not None else key_source()
    con = console if console is not None else err_console()
    labelled = skipped = 0
    quit_ = False
    with open_store(store, kind="attention", locking=opts.locking) as st:
        L, H, N = st.n_layers, st.n_heads, st.n_examples
        allowed = None if not opts.heads else {lh for lh in opts.heads}
        if allowed and any(layer >= L or head >= H for layer, head in allowed):
            raise InputError(f"--heads: the store's model has {L} layers x {H} heads")
        order = np.random.default_rng(opts.seed).permutation(N * L * H)
        todo = [int(k) for k in order if (int(k) // (L * H), (int(k) // H) % L, int(k) % H) not in done
                and (allowed is None or ((int(k) // H) % L, int(k) % H) in allowed)]
        ids = st.example_ids()
        new_file = not tsv.exists() or tsv.stat().st_size == 0
        cache: tuple[int, np.ndarray] | None = None
        with open(tsv, "a", newline="", encoding="utf-8") as fh:
            if new_file:
                fh.write(TSV_HEADER_NOTE + "\n" + "\t".join(TSV_COLUMNS) + "\n")
                fh.flush()
            ref = store_ref(store, tsv)
            for pos, k in enumerate(todo):
                if opts.limit is not None and labelled + skipped >= opts.limit:
                    break
                ex, layer, head = k // (L * H), (k // H) % L, k % H
                if cache is None or cache[0] != ex:
                    cache = (ex, st.attention(ex))
                att = cache[1][layer, head]
                tk = st.tokens(ex)
                title = f"{store.name}  example {ex} ({ids[ex]})  {head_name(layer, head)}   [map {len(done) + pos + 1} of {len(done) + len(todo)}]"
                if con.is_terminal:
                    con.clear()  # one map at a time, always at the top of the screen
                con.print(render_map(att, tk.text, title=title, max_tokens=opts.max_tokens))
                if opts.hint:
                    f = P.map_features(att[None], tk.special, tk.type_ids, windows=[int(st.attention_windows()[layer])])[0]
                    guess = P.CLASSES[int(P.classify_features(f))]
                    con.print(f"hint ({P.RULES_NAME}): {guess}; " + ", ".join(f"{n} {v:.2f}" for n, v in zip(P.FEATURES, f)))
                con.print(KEY_HELP)
                label = None
                while label is None:
                    key = next(keys, "q").lower()
                    if key in ("q", "\x03", "\x04", "\x1b"):
                        quit_ = True
                        break
                    if key == "s":
                        label = SKIP
                    elif key in P.KEYS:
                        label = P.CLASSES[P.KEYS.index(key)]
                    else:
                        con.print(f"unknown key {key!r}; {KEY_HELP}")
                if quit_:
                    break
                fh.write("\t".join((ref, str(ex), str(layer + 1), str(head + 1), label, ids[ex])) + "\n")
                fh.flush()
                labelled += label != SKIP
                skipped += label == SKIP
        remaining = len(todo) - labelled - skipped
    rows = [r for r in read_labels(tsv) if r.store == store.resolve()] if tsv.exists() else []
    t = Table(f"annotations of {store.name} in {tsv.name}", ["label", "maps"], name="annotations")
    for c in (*P.CLASSES, SKIP):
        t.add(c, sum(r.label == c for r in rows))
    t.add("remaining", remaining)
    return AnnotateResult(labelled, skipped, remaining, quit_, t)
