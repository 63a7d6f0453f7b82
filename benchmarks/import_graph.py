"""The import graph of a package (prints figures; `tests/test_code_rules.py` holds it to no cycles).

Nodes are the package's modules; an edge A -> B means A imports B, at load time or inside a
function (a lazy import still ties the two modules together), never under ``TYPE_CHECKING``.
Printed per package: nodes, edges (how many of them lazy), floors (the longest chain of imports,
counted in modules, over the graph with its cycles collapsed), and every cycle.

    .venv/bin/python benchmarks/import_graph.py [sandbox experiments agent] [--root DIR] [--edges]

``--root`` reads another checkout (e.g. a `git worktree` of an older commit) for a before/after.
"""

from __future__ import annotations

import argparse
import ast
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ImportGraph:
    """Modules of one package and who imports whom (``lazy``: edges found only inside functions)."""

    package: str
    edges: dict[str, set[str]] = field(default_factory=dict)
    lazy: set[tuple[str, str]] = field(default_factory=set)

    @property
    def n_edges(self) -> int:
        return sum(len(targets) for targets in self.edges.values())


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_names(node: ast.AST, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        # ``from pkg import mod`` loads pkg/__init__ too, but that is the package's own business:
        # count the submodule, and the package only for names that are not modules.
        subs = [f"{node.module}.{a.name}" for a in node.names]
        return subs + ([node.module] if any(s not in known for s in subs) else [])
    return []


def imports_of(path: Path, package: str, known: set[str]) -> tuple[set[str], set[str]]:
    """(modules of ``package`` that ``path`` imports, the subset imported only inside functions)."""
    tree = ast.parse(path.read_text())
    skipped = {id(sub) for node in ast.walk(tree) if isinstance(node, ast.If)
               and "TYPE_CHECKING" in ast.unparse(node.test) for sub in ast.walk(node)}
    in_functions = {id(sub) for node in ast.walk(tree)
                    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) for sub in ast.walk(node)}
    eager: set[str] = set()
    lazy: set[str] = set()
    for sub in ast.walk(tree):
        if id(sub) in skipped:
            continue
        names = {n for n in _imported_names(sub, known) if n in known and n.split(".")[0] == package}
        (lazy if id(sub) in in_functions else eager).update(names)
    return eager | lazy, lazy - eager


def build(package: str, root: Path = ROOT) -> ImportGraph:
    files = {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}
    graph = ImportGraph(package)
    for module, path in files.items():
        targets, lazy = imports_of(path, package, set(files))
        graph.edges[module] = targets - {module}
        graph.lazy |= {(module, t) for t in lazy - {module}}
    return graph


def cycles(graph: ImportGraph) -> list[list[str]]:
    """Each back edge of a depth-first walk as the cycle it closes (module names, first repeated)."""
    found: list[list[str]] = []
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph.edges[m]):
            if state.get(n) == "open":
                found.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph.edges):
        if m not in state:
            visit(m)
    return found


def floors(graph: ImportGraph) -> int:
    """Modules on the longest import chain, each cycle counted as one module."""
    component = {m: m for m in graph.edges}
    for cycle in cycles(graph):
        head = component[cycle[0]]
        for m in cycle:
            old = component[m]
            for k, v in component.items():
                if v == old:
                    component[k] = head
    depth: dict[str, int] = {}

    def level(c: str, seen: frozenset[str]) -> int:
        if c not in depth:
            below = {component[t] for m, ts in graph.edges.items() if component[m] == c for t in ts} - {c}
            depth[c] = 1 + max((level(b, seen | {c}) for b in below if b not in seen), default=0)
        return depth[c]

    return max((level(c, frozenset()) for c in set(component.values())), default=0)


def room_of(module: str) -> str:
    """The room (first subpackage, or top-level module) a module lives in: sandbox.cache.splits -> cache."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def room_edges(graph: ImportGraph) -> dict[tuple[str, str], int]:
    """Imports between rooms, counted: (importer's room, imported room) -> edges."""
    counts: dict[tuple[str, str], int] = {}
    for m, targets in graph.edges.items():
        for t in targets:
            if room_of(m) != room_of(t):
                counts[room_of(m), room_of(t)] = counts.get((room_of(m), room_of(t)), 0) + 1
    return counts


def report(graph: ImportGraph, show_edges: bool = False) -> str:
    found = cycles(graph)
    lines = [f"{graph.package}: {len(graph.edges)} modules, {graph.n_edges} edges "
             f"({len(graph.lazy)} inside functions), {floors(graph)} floors, {len(found)} cycles"]
    lines += [f"  cycle: {' -> '.join(c)}" for c in found]
    rooms: dict[str, list[str]] = {}
    for (src, dst), n in sorted(room_edges(graph).items()):
        rooms.setdefault(src, []).append(f"{dst} ({n})")
    lines += [f"  room {src} imports {', '.join(dsts)}" for src, dsts in rooms.items()]
    if show_edges:
        lines += [f"  {m} -> {t}{' (lazy)' if (m, t) in graph.lazy else ''}"
                  for m in sorted(graph.edges) for t in sorted(graph.edges[m])]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="*", default=["sandbox", "experiments", "agent"])
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout to read (default: this one)")
    parser.add_argument("--edges", action="store_true", help="list every edge")
    args = parser.parse_args()
    for package in args.packages:
        print(report(build(package, args.root.resolve()), args.edges))


if __name__ == "__main__":
    main()
