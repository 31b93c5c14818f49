"""The README's Layout section as a test: imports go only downward, and no module imports itself in a cycle.

Every ``import`` counts, also those inside functions (a lazy import is still a dependency); only the
package root ``facerecon/__init__.py`` (which re-exports the predictors lazily) is exempt.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "facerecon"

# Lowest first. A module may import modules of its own layer or of a lower one.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "fileutil", "settings"),
    ("geometry",),
    ("io",),
    ("facemodel",),
    ("metrics", "fitting"),
    ("synth",),
    ("viz",),
    ("realdata",),
    ("preprocess",),
    ("nets",),
    ("train",),
    ("photo",),
    ("pipeline",),
    ("tracking",),
    ("export",),
    ("viewer",),
    ("evaluate", "datasets"),
    ("cli",),
]
LEVEL = {name: i for i, names in enumerate(LAYERS) for name in names}


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of the facerecon modules ``path`` imports."""
    mod = _module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "facerecon")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "facerecon":
                continue
            if node.module is None or node.level == 0 or True:
                # `from . import x` / `from .pkg import mod` may name submodules: count them when they exist
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if (SRC.parent / Path(*sub.split("."))).with_suffix(".py").exists() or (SRC.parent / Path(*sub.split("."))).is_dir():
                        out.add(sub)
            out.add(target)
    return out


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    return {m: {t for t in _imports(p) if t in modules and t != m} for m, p in modules.items()}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_top_level_module_has_a_layer():
    tops = {p.stem if p.is_file() else p.name for p in SRC.iterdir()
            if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.stem != "__init__")}
    missing = sorted(tops - set(LEVEL))
    assert not missing, f"add these to LAYERS (and to the README's Layout section): {missing}"


def test_imports_only_go_down():
    bad = []
    for mod, targets in _graph().items():
        if mod == "facerecon":
            continue
        for t in targets:
            a, b = _top(mod), _top(t)
            if a in LEVEL and b in LEVEL and LEVEL[b] > LEVEL[a]:
                bad.append(f"{mod} -> {t}")
    assert not bad, "upward imports:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    graph = {m: t for m, t in _graph().items() if m != "facerecon"}
    # a package's __init__ importing its own submodules is the usual re-export, not a cycle
    edges = {m: {t for t in ts if not (t.startswith(m + ".") or m.startswith(t + ".") and t in graph and _is_pkg(t))}
             for m, ts in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:  # Tarjan
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
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
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def _is_pkg(name: str) -> bool:
    return (SRC.parent / Path(*name.split("."))).is_dir()


@pytest.mark.parametrize("needle", ["../shared", "parents[3]", "'shared'", '"shared"'])
def test_library_does_not_look_for_shared(needle):
    hits = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if needle in p.read_text()]
    assert not hits, f"library code must take data paths as arguments, not look for {needle}: {hits}"
