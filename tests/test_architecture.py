"""The package's floors only point down, and no modules import each other in a circle.

Every ``neurovamp`` module's imports are read with :mod:`ast`: module-level imports,
imports inside functions and ``if TYPE_CHECKING:`` blocks, ``importlib.import_module``
calls with a literal name, and module-level registries of module names (the lazy
``_EXPORTS`` tables of the package faces, the CLI's ``_COMMAND_MODULES``).

Floors (issue 15): data flows io → data → models → analysis → pipelines, and the
*imports* follow the rule "io depends on data and never the reverse": the modality
(``neurovamp.data``) is the type the readers in ``neurovamp.io`` produce, so ``io`` may
import ``data``; ``data`` may not import ``io``. A floor may import the floors listed in
:data:`MAY_IMPORT` and modules of its own floor (without a cycle), nothing else.

Known violations that exist today are listed, with the reason, in
:data:`KNOWN_VIOLATIONS`; the test fails on any new one, and also when a listed one has
been removed (so the list shrinks with the code instead of hiding regressions).

The root package ``neurovamp`` is the lazy face: importing it (for ``__version__``) is
allowed everywhere because it imports nothing when it is imported (checked here).
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

import neurovamp

PACKAGE_DIR = Path(neurovamp.__file__).resolve().parent

#: Floor of each module, by the longest matching name prefix.
FLOORS: dict[str, str] = {
    "neurovamp.errors": "base",
    "neurovamp._files": "base",
    "neurovamp._jsonfile": "base",
    "neurovamp._fields": "base",
    "neurovamp._budget": "base",
    "neurovamp._outputs": "base",
    "neurovamp._threads": "base",
    "neurovamp.data": "data",
    "neurovamp.io": "io",
    "neurovamp.models": "models",
    "neurovamp.analysis": "analysis",
    "neurovamp.simulate": "pipelines",
    "neurovamp.pipelines": "pipelines",
    "neurovamp.cli": "cli",
    "neurovamp.__main__": "cli",
}

#: Floors each floor may import besides its own.
MAY_IMPORT: dict[str, set[str]] = {
    "base": set(),
    "data": {"base"},
    "io": {"base", "data"},
    "models": {"base", "data"},
    "analysis": {"base", "data", "models"},
    "pipelines": {"base", "data", "io", "models", "analysis"},
    "cli": {"base", "data", "io", "models", "analysis", "pipelines"},
}

#: (importer, imported) pairs that break the floors today. Each is a debt to pay back,
#: not a permission: remove the entry together with the import.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def floor_of(module: str) -> str | None:
    best = max((prefix for prefix in FLOORS if module == prefix or module.startswith(prefix + ".")),
               key=len, default=None)
    return None if best is None else FLOORS[best]


def _resolve(name: str) -> str | None:
    """The neurovamp module an import of ``name`` loads (``pkg.attr`` → ``pkg``)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _absolute(node: ast.ImportFrom, importer: str) -> str:
    if not node.level:
        return node.module or ""
    package = importer if MODULES[importer].name == "__init__.py" else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imports_of(module: str) -> set[tuple[str, int]]:
    """(imported neurovamp module, line) for every import ``module`` makes, wherever it is."""
    return _imports_of(module, MODULES[module])


@functools.cache
def _imports_of(module: str, path: Path) -> frozenset[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[tuple[str, int]] = set()

    def add(name: str, line: int) -> None:
        target = _resolve(name)
        if target is not None and target != module:
            found.add((target, line))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module)
            for alias in node.names:
                add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base, node.lineno)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
                if isinstance(node.args[0].value, str):
                    add(node.args[0].value, node.lineno)
    for node in tree.body:  # registries of module names: lazy faces, command tables
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            for const in ast.walk(node.value):
                if isinstance(const, ast.Constant) and isinstance(const.value, str):
                    name = const.value.partition(":")[0]  # lazy faces: "module" or "module:attribute"
                    if name in MODULES:
                        add(name, const.lineno)
    return frozenset(found)


def import_graph() -> dict[str, set[str]]:
    """Module → the neurovamp modules it imports (edges into the root face left out)."""
    return {m: {t for t, _ in imports_of(m) if t != "neurovamp"} for m in MODULES if m != "neurovamp"}


def floor_violations() -> dict[tuple[str, str], list[int]]:
    out: dict[tuple[str, str], list[int]] = {}
    for module in MODULES:
        if module == "neurovamp":
            continue
        mine = floor_of(module)
        for target, line in imports_of(module):
            theirs = floor_of(target) if target != "neurovamp" else None
            if target == "neurovamp" or theirs == mine or theirs in MAY_IMPORT[mine]:
                continue
            out.setdefault((module, target), []).append(line)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_floor():
    assert [m for m in MODULES if m != "neurovamp" and floor_of(m) is None] == []


def test_no_import_climbs_a_floor_beyond_the_known_violations():
    found = floor_violations()
    new = {f"{a} -> {b} (line {', '.join(map(str, lines))})" for (a, b), lines in found.items()
           if (a, b) not in KNOWN_VIOLATIONS}
    assert not new, "imports that climb a floor (see MAY_IMPORT in this file): " + "; ".join(sorted(new))
    fixed = sorted(f"{a} -> {b}" for a, b in KNOWN_VIOLATIONS if (a, b) not in found)
    assert not fixed, f"fixed, remove from KNOWN_VIOLATIONS: {fixed}"


def test_no_modules_import_each_other_in_a_circle():
    assert cycles(import_graph()) == []


def test_the_root_face_imports_nothing_when_imported():
    tree = ast.parse(MODULES["neurovamp"].read_text(encoding="utf-8"))
    eager = [node.lineno for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
             and any(_resolve(a.name if isinstance(node, ast.Import) else f"{node.module}.{a.name}")
                     for a in node.names)]
    assert eager == []


# ---- the checker itself finds what it is meant to find
def _graph_of(source: str, name: str, tmp_path: Path, monkeypatch) -> set[str]:
    path = tmp_path / "probe.py"
    path.write_text(source)
    monkeypatch.setitem(MODULES, name, path)
    return {t for t, _ in imports_of(name)}


@pytest.mark.parametrize("source", [
    "from neurovamp.analysis.metrics import bits_per_spike\n",
    "def f():\n    import neurovamp.analysis.metrics\n",
    "def f():\n    from neurovamp.analysis import metrics\n",
    "import importlib\ndef f():\n    return importlib.import_module('neurovamp.analysis.metrics')\n",
    "_EXPORTS = {'bits_per_spike': 'neurovamp.analysis.metrics'}\n",
    "_EXPORTS = {'bps': 'neurovamp.analysis.metrics:bits_per_spike'}\n",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from neurovamp.analysis.metrics import psth_r2\n",
])
def test_an_upward_import_in_any_form_is_found(source, tmp_path, monkeypatch):
    assert _graph_of(source, "neurovamp.data.probe", tmp_path, monkeypatch) == {"neurovamp.analysis.metrics"}
    assert ("neurovamp.data.probe", "neurovamp.analysis.metrics") in floor_violations()


def test_a_cycle_is_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
