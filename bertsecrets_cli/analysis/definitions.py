"""The one vocabulary of ``--definition``: whose definition an analysis follows where ours and the authors' differ.

``ours`` is this project's definition (the default; every store written before the switch existed used it).
``authors`` is the definition in the code that produced the paper's number the analysis is set beside: the
analyses that have one name the paper and the file of the authors' released code in ``AUTHORS``. Stores keep
the choice (provenance attribute ``definition``) and every table title names it (``title_note``).
"""

from __future__ import annotations

DEFINITIONS = ("ours", "authors")

# analysis -> whose code "authors" follows (docs/guide/clark.md: "Whose definition")
AUTHORS = {
    "dependency": "Clark et al. 2019's code (attention-analysis, Syntax_Analysis.ipynb)",
    "probe": "Clark et al. 2019's code (attention-analysis, Syntax_Analysis.ipynb)",
    "cluster": "Clark et al. 2019's code (attention-analysis, General_Analysis.ipynb)",
}


def check_definition(definition: str) -> str:
    if definition not in DEFINITIONS:
        raise ValueError(f"definition must be one of {', '.join(DEFINITIONS)}, not {definition!r}")
    return definition


def title_note(definition: str, analysis: str) -> str:
    """'definition: authors, Clark et al. 2019's code (...)' or 'definition: ours', for a table title."""
    return f"definition: authors, {AUTHORS[analysis]}" if definition == "authors" else "definition: ours"
