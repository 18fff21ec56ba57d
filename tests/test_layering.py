"""The layering docs/architecture.md promises, read from the source: every import statement of the package
(module level and inside functions alike, since a lazy import is still a dependency) is checked against the
rules below, and the package's import graph must have no cycle."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PKG = "bertsecrets_cli"
ROOT = Path(__file__).resolve().parent.parent / PKG

# Neutral modules any layer may use: they import nothing of the package but errors.
#   errors  - the error classes that are the exit codes
#   heads   - L<layer>H<head> names, 1-based for users
#   tokens  - the token kinds of the store's tokens/special array (model/ writes them, analysis/ reads them)
#   outputs - every file written (exclusive temporaries, no-replace commits); inputs - every text file read
NEUTRAL = {f"{PKG}.errors", f"{PKG}.heads", f"{PKG}.tokens", f"{PKG}.outputs", f"{PKG}.inputs"}

# What cli/ may import besides jobs/, its own modules and the neutral ones, and why:
#   bertsecrets_cli         - __version__ for --version
#   render.tables           - jobs return Table objects and never print results; emitting them is the command line's job
#   render.console          - likewise the one-line notes on stderr and the --quiet/--verbose level
CLI_ALSO = {PKG: "--version", f"{PKG}.render.tables": "emit the tables a job returns",
            f"{PKG}.render.console": "notes on stderr and the verbosity level"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(name: str) -> list[tuple[str, int]]:
    """(imported module, line) for every import in ``name``; ``from pkg import sub`` counts as importing pkg.sub."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for a in node.names:
                sub = f"{mod}.{a.name}"
                found.append((sub if sub in MODULES else mod, node.lineno))
    return found


IMPORTS = {name: _imports(name) for name in MODULES}


def _inside(module: str, layer: str) -> bool:
    return module == f"{PKG}.{layer}" or module.startswith(f"{PKG}.{layer}.")


def _layer_modules(layer: str) -> list[str]:
    return [m for m in MODULES if _inside(m, layer)]


def _where(name: str, line: int) -> str:
    return f"{MODULES[name].relative_to(ROOT.parent)}:{line}"


def _violations(layer: str, allowed) -> list[str]:  # noqa: ANN001 - a predicate over module names
    return [f"{_where(m, line)} imports {imp}" for m in _layer_modules(layer) for imp, line in IMPORTS[m] if not allowed(imp)]


def _internal(module: str) -> bool:
    return module == PKG or module.startswith(PKG + ".")


def test_the_import_reader_sees_the_package():
    """Guards the test itself: the walk finds the layers and resolves known imports (else every rule passes vacuously)."""
    for layer in ("cli", "jobs", "model", "analysis", "data", "store", "render"):
        assert len(_layer_modules(layer)) >= 2, layer
    assert any(imp == f"{PKG}.jobs.extract" for imp, _ in IMPORTS[f"{PKG}.cli.extract"])
    assert any(imp == "numpy" for imp, _ in IMPORTS[f"{PKG}.analysis.patterns"])  # found inside a function too
    assert any(imp == f"{PKG}.cli.common" for imp, _ in IMPORTS[f"{PKG}.cli.extract"])  # from pkg import module


def test_model_reports_through_callbacks_and_never_imports_jobs_render_or_cli():
    bad = ("jobs", "render", "cli")
    assert _violations("model", lambda imp: not any(_inside(imp, b) for b in bad)) == []


def test_analysis_is_pure_numpy_and_scipy():
    """No torch, HDF5, printing or model code: only numpy, scipy, the standard library, other analysis modules and tokens."""

    def ok(imp: str) -> bool:
        top = imp.split(".")[0]
        if _internal(imp):
            return _inside(imp, "analysis") or imp == f"{PKG}.tokens"
        return top in ("numpy", "scipy", "__future__") or top in sys.stdlib_module_names

    assert _violations("analysis", ok) == []


def test_data_readers_never_import_render_jobs_or_cli():
    """Readers report problems through the callbacks their caller passes (FrameNetRelease warn=, detail=)."""
    assert _violations("data", lambda imp: not any(_inside(imp, b) for b in ("render", "jobs", "cli"))) == []


def test_cli_calls_only_jobs():
    """cli/ parses options and calls jobs/; it never reaches into store/, model/, analysis/ or data/ itself."""

    def ok(imp: str) -> bool:
        return not _internal(imp) or _inside(imp, "cli") or _inside(imp, "jobs") or imp in NEUTRAL or imp in CLI_ALSO

    assert _violations("cli", ok) == []


def test_the_public_api_is_a_top_layer_nothing_else_imports():
    """api.py wraps jobs/ and reads stores (store/) for notebooks; like cli/ it computes nothing itself, and no module
    of the package may depend on it (the package's __init__ loads it by name, on first use, for the re-export)."""
    api = f"{PKG}.api"

    def ok(imp: str) -> bool:
        return not _internal(imp) or any(_inside(imp, layer) for layer in ("jobs", "store", "render")) or imp in NEUTRAL

    assert [f"{_where(api, line)} imports {imp}" for imp, line in IMPORTS[api] if not ok(imp)] == []
    assert [_where(m, line) for m in MODULES for imp, line in IMPORTS[m] if imp == api] == []


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself), Tarjan's algorithm."""
    graph = {m: sorted({imp for imp, _ in IMPORTS[m] if imp in MODULES}) for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_among_the_package_modules():
    assert _cycles() == []


@pytest.mark.parametrize("rule", ["model", "analysis", "data", "cli"])
def test_each_rule_catches_a_planted_violation(rule, monkeypatch):
    """A rule that cannot fail proves nothing: plant one forbidden import per rule and see it reported."""
    victim = _layer_modules(rule)[0]
    planted = {"model": f"{PKG}.render.progress", "analysis": "torch", "data": f"{PKG}.render.console", "cli": f"{PKG}.store.reader"}[rule]
    monkeypatch.setitem(IMPORTS, victim, [*IMPORTS[victim], (planted, 1)])
    test = {"model": test_model_reports_through_callbacks_and_never_imports_jobs_render_or_cli, "analysis": test_analysis_is_pure_numpy_and_scipy,
            "data": test_data_readers_never_import_render_jobs_or_cli, "cli": test_cli_calls_only_jobs}[rule]
    with pytest.raises(AssertionError, match="imports " + planted.replace(".", r"\.")):
        test()


def test_the_cycle_check_catches_a_planted_cycle(monkeypatch):
    a, b = f"{PKG}.entry", f"{PKG}.cli.app"
    monkeypatch.setitem(IMPORTS, b, [*IMPORTS[b], (a, 1)])  # the cycle this package once had
    assert any(a in c and b in c for c in _cycles())


def test_the_api_rule_catches_a_planted_violation(monkeypatch):
    api = f"{PKG}.api"
    monkeypatch.setitem(IMPORTS, api, [*IMPORTS[api], (f"{PKG}.model.load", 1)])
    with pytest.raises(AssertionError, match=r"imports bertsecrets_cli\.model\.load"):
        test_the_public_api_is_a_top_layer_nothing_else_imports()
    monkeypatch.setitem(IMPORTS, api, [imp for imp in IMPORTS[api] if imp[0] != f"{PKG}.model.load"])
    victim = f"{PKG}.jobs.view"
    monkeypatch.setitem(IMPORTS, victim, [*IMPORTS[victim], (api, 1)])
    with pytest.raises(AssertionError, match=r"jobs/view\.py"):
        test_the_public_api_is_a_top_layer_nothing_else_imports()
