"""The sha256 of a model's weights file, hashed once per (path, size, mtime) and remembered.

Hashing a 440 MB BERT takes about a second on every load; stores record the fingerprint and
``extract --resume`` compares it, so it must stay exact: any change of size or modification time
(ns) of the file hashes it again. Remembered in this process and in a small JSON file under
``$BERTSECRETS_CACHE_DIR`` (default ``$XDG_CACHE_HOME/bertsecrets``, else ``~/.cache/bertsecrets``);
a cache that cannot be read or written is simply not used.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from bertsecrets_cli.errors import BertsecretsError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
CACHE_NAME = "fingerprints.json"
MAX_ENTRIES = 256
RACY_SECONDS = 2.0  # files modified this recently are hashed every time (git's 'racy' rule)

_MEMO: dict[tuple[str, int, int], str] = {}


def cache_dir() -> Path:
    env = os.environ.get("BERTSECRETS_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bertsecrets"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def _read_cache(file: Path) -> dict[str, dict]:
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(file: Path, data: dict[str, dict]) -> None:
    """Atomic (temp + rename), so concurrent loads never read half a file; failures are ignored."""
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        from bertsecrets_cli import outputs

        outputs.write_text(file, json.dumps(data, sort_keys=True), mode="replace")
    except (OSError, BertsecretsError):
        pass


def file_fingerprint(path: Path) -> str:
    """sha256 of ``path``, from the cache when its resolved path, size and mtime (ns) are unchanged."""
    real = Path(os.path.realpath(path))
    st = real.stat()
    key = (str(real), st.st_size, st.st_mtime_ns)
    if key in _MEMO:
        return _MEMO[key]
    file = cache_dir() / CACHE_NAME
    cache = _read_cache(file)
    hit = cache.get(key[0])
    if isinstance(hit, dict) and hit.get("size") == key[1] and hit.get("mtime_ns") == key[2] and isinstance(hit.get("sha256"), str):
        _MEMO[key] = hit["sha256"]
        return hit["sha256"]
    digest = sha256_file(real)
    if time.time() - st.st_mtime < RACY_SECONDS:
        # written just now: a rewrite within the file system's mtime granularity could keep size and mtime
        return digest
    _MEMO[key] = digest
    cache.pop(key[0], None)
    cache[key[0]] = {"size": key[1], "mtime_ns": key[2], "sha256": digest}
    while len(cache) > MAX_ENTRIES:  # oldest first (dicts keep insertion order, and a refresh re-inserts)
        cache.pop(next(iter(cache)))
    _write_cache(file, cache)
    return digest


def weights_fingerprint(folder: Path) -> str:
    """The fingerprint of a save_pretrained folder's weights file, or "unknown" when it has none."""
    for name in WEIGHT_FILES:
        f = folder / name
        if f.exists():
            return file_fingerprint(f)
    return "unknown"
