"""bertsecrets: analyse the self-attention heads of BERT-like encoders (Kovaleva et al. 2019 and beyond).

The public Python API (bertsecrets_cli.api) is re-exported here: ``import bertsecrets_cli as bs; bs.open_store(...)``.
Its names load on first use (PEP 562), so ``import bertsecrets_cli`` and every ``--help`` stay cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# The public names: kept across minor versions (docs/versioning.md); tests/test_api.py pins this list.
__all__ = [
    "__version__", "Store", "Result", "View", "open_store",
    "extract", "classify", "diff", "ablate", "words", "cluster", "framenet", "coref", "probe", "view", "show",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        # by name, not an import statement: the api imports jobs/, which import this package for __version__
        return getattr(importlib.import_module("bertsecrets_cli.api"), name)
    raise AttributeError(f"module 'bertsecrets_cli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
