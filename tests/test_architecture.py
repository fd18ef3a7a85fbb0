"""The package's modules import each other without cycles (docs/architecture.md): every
import, at module level or inside a function, is an edge of the graph checked here."""

from __future__ import annotations

import ast
from pathlib import Path

import featcodec

ROOT = Path(featcodec.__file__).resolve().parent


def _modules() -> dict[str, Path | None]:
    """Module name -> source file, plus the compiled extensions (leaves, no source)."""
    mods: dict[str, Path | None] = {}
    for p in ROOT.rglob("*.py"):
        parts = list(p.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = p
    mods.update({"featcodec._core": None, "featcodec._cuda": None})
    return mods


def _imports(name: str, path: Path, mods: dict) -> set[str]:
    """The modules of the package that ``name`` imports (``from . import x`` counts as an
    import of the submodule ``x`` when ``x`` is one, else of the package)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            subs = {f"{base}.{a.name}" for a in node.names} & set(mods)
            out |= subs if len(subs) == len(node.names) else subs | {base}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {m for m in out if m in mods and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = [stack.pop()]
            while comp[-1] != v:
                comp.append(stack.pop())
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    mods = _modules()
    graph = {m: (set() if p is None else _imports(m, p, mods)) for m, p in mods.items()}
    assert "featcodec.pipeline" in graph["featcodec.api"]  # the graph sees real edges
    assert "featcodec.pipeline" in graph["featcodec.ratecontrol"]
    assert _cycles(graph) == []


def test_rate_control_and_stages_do_not_reach_into_the_api():
    mods = _modules()
    for name in ("featcodec.ratecontrol", "featcodec.pipeline", "featcodec.stages.value_transform",
                 "featcodec.stages.alignment"):
        assert "featcodec.api" not in _imports(name, mods[name], mods), name
