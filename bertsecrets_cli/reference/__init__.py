"""The papers' headline numbers, kept by the project (Kovaleva et al. 2019, arXiv:1908.08593; Clark et al. 2019, arXiv:1906.04341).

``paper_numbers.json``: numbers stated in the text or read off its figures; ``figure_values.json``:
full arrays read off Figs 5, 6, 8 and 9 (approximate, see its ``_note``); ``clark_numbers.json``: the
transcribed cells of Clark et al.'s Tables 1-2 (cited in its ``_source``).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


@cache
def paper_numbers() -> dict[str, Any]:
    return json.loads((HERE / "paper_numbers.json").read_text())


@cache
def figure_values() -> dict[str, Any]:
    return json.loads((HERE / "figure_values.json").read_text())


@cache
def clark_numbers() -> dict[str, Any]:
    return json.loads((HERE / "clark_numbers.json").read_text())
