"""No import cycles: every module imports on its own, and the import graph has no cycle.

An import cycle either breaks at import time (``ImportError: partially initialized
module``, depending on which module a user imports first) or hides in a deferred import
inside a function; the first test catches the former, the second the latter.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Repository folder -> installed package name.
ROOTS = {"mmenv": "mmenv", "agents": "mmenv.agents", "experiments": "mmenv.experiments"}
#: Cycles still to remove (deferred imports both ways: make_bench_env(instances=...) builds the
#: instance-cycling env, which builds DUSBench environments through make_bench_env).
KNOWN_CYCLES = [{"mmenv.cycling", "mmenv.wrappers"}]


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in ROOTS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            if parts and parts[-1] == "__main__":
                continue
            out[".".join([package, *parts])] = path
    return out


@pytest.mark.subprocess
def test_every_module_imports_on_its_own():
    """Each module is imported first, in a process where no module of the package is loaded
    yet (a fork of one fresh interpreter that pre-loaded only third-party libraries)."""
    names = sorted(_modules())
    script = textwrap.dedent("""
        import os, sys, traceback
        import numpy, torch, gymnasium, yaml  # third-party only: the package's modules stay unloaded
        failed = []
        for name in sys.argv[1:]:
            pid = os.fork()
            if pid == 0:
                try:
                    __import__(name)
                except BaseException:
                    traceback.print_exc()
                    os._exit(1)
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            if status != 0:
                failed.append(name)
        print("FAILED", failed)
        sys.exit(1 if failed else 0)
    """)
    proc = subprocess.run([sys.executable, "-c", script, *names], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "FAILED []" in proc.stdout


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports, at module level or inside functions, outside
    ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    type_only = {id(sub) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test)
                 for sub in ast.walk(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def _cycles(edges: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_even_through_deferred_imports():
    modules = _modules()
    edges = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert "mmenv.models.multimodal" in edges["mmenv.learners.common"]   # the graph sees imports
    cycles = [c for c in _cycles(edges) if c not in KNOWN_CYCLES]
    assert not cycles, f"import cycles: {cycles}"
