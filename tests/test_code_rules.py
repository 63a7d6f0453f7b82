"""No import cycles inside experiments/ or sandbox/: each room is layered, so any module can be
imported first and a module's dependencies can be read off its import block."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, package: str, known: set[str]) -> set[str]:
    """Modules of ``package`` that ``path`` imports, at load time or inside functions (a lazy
    import still ties the two modules together: the layering must hold for it too); imports
    under TYPE_CHECKING are left out (they never run)."""
    tree = ast.parse(path.read_text())
    skipped = {id(sub) for node in ast.walk(tree) if isinstance(node, ast.If)
               and "TYPE_CHECKING" in ast.unparse(node.test) for sub in ast.walk(node)}
    found: set[str] = set()
    for sub in ast.walk(tree):
        if id(sub) in skipped:
            continue
        names: list[str] = []
        if isinstance(sub, ast.Import):
            names = [a.name for a in sub.names]
        elif isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
            # ``from pkg import mod`` loads pkg/__init__ too, but that is the package's own
            # business: count the submodule, and the package only for names that are not modules.
            subs = [f"{sub.module}.{a.name}" for a in sub.names]
            names = subs + ([sub.module] if any(s not in known for s in subs) else [])
        found |= {n for n in names if n in known and n.split(".")[0] == package}
    return found


def cycles(package: str) -> list[list[str]]:
    root = globals()["ROOT"]
    files = {_module_name(p, root): p for p in (root / package).rglob("*.py")}
    graph = {m: _imports(p, package, set(files)) - {m} for m, p in files.items()}
    found, state, stack = [], {}, []

    def visit(m: str) -> None:
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                found.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return found


@pytest.mark.parametrize("package", ["agent", "experiments", "sandbox"])
def test_no_import_cycles(package):
    assert cycles(package) == []


def test_the_check_finds_a_cycle(tmp_path, monkeypatch):
    pkg = tmp_path / "loopy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from loopy import b\n")
    (pkg / "b.py").write_text("import loopy.a\n\n\ndef later():\n    import loopy.c\n")
    (pkg / "c.py").write_text("import loopy.b\n")
    (pkg / "d.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import loopy.a\n")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    # b -> c is lazy and still a cycle; d's import only exists for the type checker
    assert cycles("loopy") == [["loopy.a", "loopy.b", "loopy.a"], ["loopy.b", "loopy.c", "loopy.b"]]


def _environ_writes(source: str) -> list[str]:
    """``os.environ[...] =``, ``os.environ.update/setdefault/pop/...`` and ``os.putenv`` calls."""
    hits = []
    for node in ast.walk(ast.parse(source)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AugAssign) else node.targets if isinstance(node, ast.Delete) else []
        hits += [ast.unparse(t) for t in targets if isinstance(t, ast.Subscript) and "environ" in ast.unparse(t.value)]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner, name = ast.unparse(node.func.value), node.func.attr
            if ("environ" in owner and name in ("update", "setdefault", "pop", "popitem", "clear")) or (
                    owner == "os" and name in ("putenv", "unsetenv")):
                hits.append(ast.unparse(node))
    return hits


def test_library_code_never_writes_the_process_environment():
    """Settings travel as arguments; a library that edits os.environ changes every thread's world.
    The command line (agent/cli) is the program itself, not a library, and may set its own; so
    is a seed's child of the warm worker (sandbox/runtime/worker.py: a forked process of its own,
    one thread, setting HOME/TMPDIR to its scratch before any idea code runs)."""
    programs = {ROOT / "sandbox" / "runtime" / "worker.py"}
    found = {str(p.relative_to(ROOT)): _environ_writes(p.read_text())
             for package in ("agent", "experiments", "sandbox") for p in (ROOT / package).rglob("*.py")
             if (ROOT / "agent" / "cli") not in p.parents and p not in programs}
    assert {k: v for k, v in found.items() if v} == {}
    assert _environ_writes("import os\nos.environ['A'] = '1'\nos.environ.setdefault('B', '2')\n") == [
        "os.environ['A']", "os.environ.setdefault('B', '2')"]
