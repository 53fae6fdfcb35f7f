"""The shape of the code: no import cycle among bnstudy's modules, and no module over 500 lines.

Imports are read from the source (every ``import`` statement, a function's lazy ones included: an import
moved into a function to dodge a cycle is still a cycle), except those under ``if TYPE_CHECKING:``, which
never run. A package whose ``__init__`` collects its modules (``bnstudy.registry.collect``) imports each one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BNSTUDY = Path(__file__).resolve().parents[1] / "bnstudy"
MAX_LINES = 500
SPLIT_ELSEWHERE = {"train.py"}
"""Modules whose split is another change's (the training loop: issue 25, part A); remove each once it lands."""


def modules(root: Path = BNSTUDY) -> dict[str, Path]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every import statement in ``tree``, skipping ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _type_checking(node):
            yield from (i for n in node.orelse for i in _imports(n))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _imports(node)


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The bnstudy modules ``name`` imports: each module named, and for ``from P import x`` P and P.x when x is
    a module; a package that calls ``collect(__name__, __path__)`` imports all of its modules."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text())
    out = set()
    for node in _imports(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
            continue
        base = node.module or ""
        if node.level:
            package = name.split(".") if is_package else name.split(".")[:-1]
            base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
        out.add(base)
        out |= {f"{base}.{a.name}" for a in node.names}
    if is_package and "collect(__name__, __path__)" in path.read_text():
        out |= {m for m in known if m.startswith(name + ".") and "." not in m[len(name) + 1:]}
    return {m for m in out if m in known and m != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_bnstudy_has_no_import_cycle():
    known = modules()
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    assert "bnstudy.figures.base" in graph["bnstudy.figures"]  # collected: the walk sees the registries
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle_through_a_lazy_import_and_a_collecting_package(tmp_path):
    """The check itself: a lazy import closing a loop, and a package that collects a module which imports the
    package back, are both cycles; a TYPE_CHECKING import is not."""
    pkg = tmp_path / "bnstudy"
    (pkg / "reg").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from bnstudy import b\n")
    (pkg / "b.py").write_text("def f():\n    from bnstudy.a import x\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bnstudy.d import y\n")
    (pkg / "d.py").write_text("import bnstudy.c\n")
    (pkg / "reg" / "__init__.py").write_text("from bnstudy.registry import collect\ncollect(__name__, __path__)\n")
    (pkg / "reg" / "one.py").write_text("from bnstudy.reg import THINGS\n")
    known = modules(pkg)
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    assert cycles(graph) == [["bnstudy.a", "bnstudy.b"], ["bnstudy.reg", "bnstudy.reg.one"]]


@pytest.mark.parametrize("path", sorted(p for p in BNSTUDY.rglob("*.py")), ids=lambda p: str(p.relative_to(BNSTUDY)))
def test_no_module_is_over_500_lines(path):
    if str(path.relative_to(BNSTUDY)) in SPLIT_ELSEWHERE:
        pytest.skip("split by another change (SPLIT_ELSEWHERE)")
    assert len(path.read_text().splitlines()) <= MAX_LINES
