"""Every neurovamp name a benchmark script imports exists (benchmarks run on demand, so a moved module would go unnoticed)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


def _neurovamp_imports(path: Path) -> list[tuple[str, str | None, int]]:
    """(module, name or None, line) of every ``import neurovamp...`` / ``from neurovamp... import name``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] == "neurovamp":
            found += [(node.module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names if alias.name.split(".")[0] == "neurovamp"]
    return found


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_imports_resolve(path):
    missing = []
    for module, name, line in _neurovamp_imports(path):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError:
            missing.append(f"line {line}: no module {module}")
            continue
        if name is not None and name != "*" and not hasattr(mod, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ModuleNotFoundError:
                missing.append(f"line {line}: {module} has no {name}")
    assert not missing, f"{path.name}: " + "; ".join(missing)


def test_the_check_sees_function_level_imports(tmp_path):
    script = tmp_path / "bench.py"
    script.write_text("def main():\n    from neurovamp.paper import run_paper\n")
    assert _neurovamp_imports(script) == [("neurovamp.paper", "run_paper", 2)]
