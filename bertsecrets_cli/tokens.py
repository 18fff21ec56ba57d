"""Token kinds of the store's tokens/special array and the punctuation test: neutral constants that model/
(which derives them from the tokenizer) and analysis/ (which reads them back) share without importing each other."""

from __future__ import annotations

import unicodedata

# token kinds in the store's tokens/special array
NORMAL, CLS, SEP, OTHER_SPECIAL = 0, 1, 2, 3


def is_punctuation_token(token: str) -> bool:
    """A word piece made only of punctuation characters, after WordPiece/BPE markers are removed."""
    core = token.removeprefix("##").lstrip("Ġ▁")
    return bool(core) and all(unicodedata.category(c).startswith("P") for c in core)
